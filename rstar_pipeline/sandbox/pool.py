"""A pool of sandbox worker processes speaking the `_worker.py` protocol, shared by the local and
Docker backends: start-up handshake (isolation that cannot be set up fails closed), dispatch of a
batch over idle workers, the result cache, and replacement of workers that die or stop answering.
A backend only says how to start a worker and how to clean up after one.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import tempfile
import time
from collections import deque
from typing import Sequence

from rstar_pipeline.sandbox.base import ExecResult, ExecStatus, ResultCache, SandboxConfig, SandboxIsolationError

GRACE_S = 5.0  # beyond the program's own limit before a silent worker is presumed hung
START_TIMEOUT_S = 120.0  # importing sympy and numpy and warming up, on a loaded machine


class Worker:
    """One worker process; `__init__` waits for its ready line."""

    def __init__(self, argv: list[str], env: dict | None, on_discard=None):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=env, close_fds=True)
        self.on_discard = on_discard
        self.task: int | None = None
        self.deadline = 0.0
        self.isolation = self._handshake()

    def _handshake(self) -> list[str]:
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=START_TIMEOUT_S)
        selector.close()
        line = self.proc.stdout.readline() if ready else b""
        hello = json.loads(line) if line.strip() else {}
        if not hello.get("ready"):
            self.stderr.seek(0)
            detail = hello.get("error") or self.stderr.read().decode(errors="replace")[-2000:] or "no answer"
            self.discard()
            raise SandboxIsolationError(f"sandbox worker could not start: {detail}")
        return hello["isolation"]

    def send(self, task: int, code: str, timeout_s: float) -> None:
        self.task, self.deadline = task, time.monotonic() + timeout_s + GRACE_S
        self.proc.stdin.write(json.dumps({"id": task, "code": code, "timeout_s": timeout_s}).encode() + b"\n")
        self.proc.stdin.flush()

    def discard(self, graceful: bool = False) -> None:
        """Stop the worker: on a graceful close it sees the end of its input and cleans up first."""
        if graceful:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()
        if self.on_discard:
            self.on_discard()


class WorkerPool:
    """`run(programs, timeout_s)` over workers from `new_worker()`; use as a context manager."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.cache = ResultCache(config.cache_size)
        self.executed = 0
        self.workers: list[Worker] = []

    # backends implement these two
    def new_worker(self) -> Worker:
        raise NotImplementedError

    def pool_size(self) -> int:
        raise NotImplementedError

    @property
    def isolation(self) -> list[str]:
        """The isolation measures the workers report as active (starts a worker if none runs)."""
        self._ensure_workers(1)
        return self.workers[0].isolation

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, code: str, timeout_s: float | None = None) -> ExecResult:
        return self.run([code], timeout_s)[0]

    def run(self, programs: Sequence[str], timeout_s: float | None = None) -> list[ExecResult]:
        timeout_s = timeout_s or self.config.timeout_s
        key = lambda code: (code, timeout_s, self.config.memory_mb, self.config.file_size_mb, self.config.isolation)
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
        for worker in self.workers:
            worker.discard(graceful=True)
        self.workers = []

    def _run_uncached(self, programs: list[str], timeout_s: float) -> list[ExecResult]:
        if not programs:
            return []
        self._ensure_workers(min(len(programs), self.pool_size()))
        results: list[ExecResult | None] = [None] * len(programs)
        pending = deque(range(len(programs)))
        selector = selectors.DefaultSelector()
        for worker in self.workers:
            selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        try:
            while pending or any(w.task is not None for w in self.workers):
                for worker in self.workers:
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

    def _collect(self, worker: Worker, selector, results) -> None:
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
        for worker in list(self.workers):
            if worker.task is not None and now > worker.deadline:
                self._replace(worker, selector, results, "sandbox worker stopped answering")

    def _replace(self, worker: Worker, selector, results, why: str) -> None:
        if worker.task is not None:
            results[worker.task] = ExecResult(ExecStatus.KILLED, "", why, None, 0.0)
        selector.unregister(worker.proc.stdout)
        worker.discard()
        fresh = self.new_worker()
        self.workers[self.workers.index(worker)] = fresh
        selector.register(fresh.proc.stdout, selectors.EVENT_READ, fresh)

    def _ensure_workers(self, n: int) -> None:
        while len(self.workers) < n:
            self.workers.append(self.new_worker())
