"""Local sandbox backend: a pool of warm worker processes, one fresh forked child per program.

Workers are started with an empty environment and Python's isolated mode; each forks a child per
program (see `_worker.py` for what the child gets). This module dispatches a batch over the
workers, caches results of identical programs, and replaces workers that die or hang.

Not covered here: network namespaces, uid switching and capability dropping; those belong to the
hardened backend.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from rstar_pipeline.sandbox.base import ExecResult, ExecStatus, ResultCache, SandboxConfig

WORKER = Path(__file__).with_name("_worker.py")
GRACE_S = 5.0  # beyond the program's own limit before a silent worker is presumed hung
WORKER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class _Worker:
    def __init__(self, settings: dict, scratch_root: Path):
        # each worker has its own scratch root, removed with it: a program that kills its worker
        # leaves no directory behind
        self.scratch = Path(tempfile.mkdtemp(prefix="w", dir=scratch_root))
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-X", "utf8", str(WORKER), json.dumps({**settings, "scratch_root": str(self.scratch)})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=WORKER_ENV, close_fds=True)
        self.task: int | None = None
        self.deadline = 0.0

    def send(self, task: int, code: str, timeout_s: float) -> None:
        self.task, self.deadline = task, time.monotonic() + timeout_s + GRACE_S
        self.proc.stdin.write(json.dumps({"id": task, "code": code, "timeout_s": timeout_s}).encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


class LocalSandbox:
    """`run(programs, timeout_s)` over a pool of forking workers. Use as a context manager."""

    def __init__(self, config: SandboxConfig = SandboxConfig()):
        self.config = config
        self.cache = ResultCache(config.cache_size)
        self.executed = 0
        self._settings = {**asdict(config), "preload": list(config.preload)}
        self._workers: list[_Worker] = []
        self._scratch_root: Path | None = None

    def __enter__(self) -> "LocalSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, code: str, timeout_s: float | None = None) -> ExecResult:
        return self.run([code], timeout_s)[0]

    def run(self, programs: Sequence[str], timeout_s: float | None = None) -> list[ExecResult]:
        timeout_s = timeout_s or self.config.timeout_s
        key = lambda code: (code, timeout_s, self.config.memory_mb, self.config.file_size_mb)
        results: dict[str, ExecResult] = {}
        todo = []
        for code in dict.fromkeys(programs):  # unique, in order
            cached = self.cache.get(key(code))
            if cached is not None:
                results[code] = cached
            else:
                todo.append(code)
        for code, result in zip(todo, self._run_uncached(todo, timeout_s)):
            self.cache.put(key(code), result)
            results[code] = result
        return [results[code] for code in programs]

    def close(self) -> None:
        for worker in self._workers:
            worker.kill()
        self._workers = []
        if self._scratch_root is not None:
            shutil.rmtree(self._scratch_root, ignore_errors=True)
            self._scratch_root = None

    def _run_uncached(self, programs: list[str], timeout_s: float) -> list[ExecResult]:
        if not programs:
            return []
        self._ensure_workers(min(len(programs), self._pool_size()))
        results: list[ExecResult | None] = [None] * len(programs)
        pending = deque(range(len(programs)))
        selector = selectors.DefaultSelector()
        for worker in self._workers:
            selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        try:
            while pending or any(w.task is not None for w in self._workers):
                for worker in self._workers:
                    if worker.task is None and pending:
                        task = pending.popleft()
                        worker.send(task, programs[task], timeout_s)
                for sel_key, _ in selector.select(timeout=0.5):
                    self._collect(sel_key.data, selector, results)
                self._reap_hung(selector, results)
        finally:
            selector.close()
        self.executed += len(programs)
        return results  # type: ignore[return-value]

    def _collect(self, worker: _Worker, selector, results) -> None:
        line = worker.proc.stdout.readline()
        if not line:  # the worker died (a program killed it): the program counts as killed
            self._replace(worker, selector, results, "sandbox worker died while running the program")
            return
        raw = json.loads(line)
        results[raw["id"]] = ExecResult(status=ExecStatus(raw["status"]), stdout=raw["stdout"], stderr=raw["stderr"],
                                        exit_code=raw["exit_code"], duration_s=raw["duration_s"])
        worker.task = None

    def _reap_hung(self, selector, results) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.task is not None and now > worker.deadline:
                self._replace(worker, selector, results, "sandbox worker stopped answering")

    def _replace(self, worker: _Worker, selector, results, why: str) -> None:
        if worker.task is not None:
            results[worker.task] = ExecResult(ExecStatus.KILLED, "", why, None, 0.0)
        selector.unregister(worker.proc.stdout)
        worker.kill()
        fresh = self._new_worker()
        self._workers[self._workers.index(worker)] = fresh
        selector.register(fresh.proc.stdout, selectors.EVENT_READ, fresh)

    def _ensure_workers(self, n: int) -> None:
        while len(self._workers) < n:
            self._workers.append(self._new_worker())

    def _new_worker(self) -> _Worker:
        if self._scratch_root is None:
            self._scratch_root = Path(tempfile.mkdtemp(prefix="rstar-sandbox-"))
        return _Worker(self._settings, self._scratch_root)

    def _pool_size(self) -> int:
        return self.config.workers or os.cpu_count() or 1
