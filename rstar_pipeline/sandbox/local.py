"""Local sandbox backend: warm worker processes on this machine, one isolated child per program.

Workers start with an empty environment in Python's isolated mode, import sympy and numpy, warm
them up, and then fork (strict mode: clone into new namespaces) a fresh child per program; see
`_worker.py` for what isolates each child. With `isolation="strict"` (the default) a worker that
cannot set up its namespaces refuses to start and the pool raises `SandboxIsolationError`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
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
        extra, scratch = {}, None
        if self.config.isolation != "strict":
            # strict workers keep their scratch space in a private tmpfs; the others get a host folder
            scratch = tempfile.mkdtemp(prefix="rstar-sandbox-")
            extra["scratch_root"] = os.path.join(scratch, "w")
            os.mkdir(extra["scratch_root"])
        argv = [sys.executable, "-I", "-X", "utf8", str(WORKER), json.dumps(worker_settings(self.config, **extra))]
        on_discard = (lambda: shutil.rmtree(scratch, ignore_errors=True)) if scratch else None
        return Worker(argv, WORKER_ENV, on_discard)
