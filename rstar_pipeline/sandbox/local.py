"""Local sandbox backend: warm worker processes on this machine, one isolated child per program.

Workers start with an empty environment in Python's isolated mode, import sympy and numpy, warm
them up, and then fork (strict mode: clone into new namespaces) a fresh child per program; see
`_worker.py` for what isolates each child. With `isolation="strict"` (the default) a worker that
cannot set up its namespaces refuses to start and the pool raises `SandboxIsolationError`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from rstar_pipeline.sandbox.base import SandboxConfig
from rstar_pipeline.sandbox.pool import Worker, WorkerPool
from rstar_pipeline.sandbox.warmup import warmup_code

WORKER = Path(__file__).with_name("_worker.py")
# single-threaded numeric libraries: a forked or cloned child copies only the calling thread
WORKER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def worker_settings(config: SandboxConfig, **extra) -> dict:
    warmup = warmup_code(config.preload) if config.warmup else ""
    return {**asdict(config), "preload": list(config.preload), "warmup": warmup, **extra}


class LocalSandbox(WorkerPool):
    def pool_size(self) -> int:
        return self.config.workers or os.cpu_count() or 1

    def new_worker(self) -> Worker:
        if self.config.isolation == "strict":  # scratch space lives in private tmpfs; cgroups are per worker
            argv = [sys.executable, "-I", "-X", "utf8", str(WORKER), json.dumps(worker_settings(self.config))]
            worker = Worker(argv, WORKER_ENV)
            worker.on_discard = lambda: _remove_cgroups(worker.proc.pid)
            return worker
        scratch = tempfile.mkdtemp(prefix="rstar-sandbox-")
        os.mkdir(os.path.join(scratch, "w"))
        settings = worker_settings(self.config, scratch_root=os.path.join(scratch, "w"))
        argv = [sys.executable, "-I", "-X", "utf8", str(WORKER), json.dumps(settings)]
        return Worker(argv, WORKER_ENV, lambda: shutil.rmtree(scratch, ignore_errors=True))


def _remove_cgroups(pid: int) -> None:
    """A strict worker's cgroups (named after its pid), once its processes are gone (they die with it)."""
    for path in glob.glob(f"/sys/fs/cgroup/*/rstar-sandbox/{pid}") + glob.glob(f"/sys/fs/cgroup/rstar-sandbox/{pid}"):
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:  # still busy for a moment: the worker is being killed by the kernel
                time.sleep(0.01)
