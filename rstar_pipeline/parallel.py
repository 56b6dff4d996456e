"""Independent work spread over spawned processes of one torch thread each, for CPUs.

A round's search shards are independent (each is searched alone, with its own seeds, and written
alone), so `stages.search_shards` can search several at once with the trees of one process. On 2
cores it pays where the policy generates: round 2 of the mini world (128 problems on 8 shards) takes
1.24x less wall time in 2 workers than in one process of 2 threads (`bench/shards.py`). Round 1 with the
teacher does not gain (1.01x): it waits on the sandbox, whose workers already use both cores.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def pool(processes: int, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """Workers started with spawn, not fork: a forked copy of a process whose torch threads are running
    can deadlock. `initializer(*initargs)` runs once in each worker, after it is set to one torch thread."""
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                               initargs=(initializer, initargs))


def _start(initializer, initargs: tuple) -> None:
    import torch

    torch.set_num_threads(1)
    if initializer is not None:
        initializer(*initargs)
