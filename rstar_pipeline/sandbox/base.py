"""The sandbox contract: programs in, typed results out.

`Sandbox.run(programs, timeout_s)` executes each program in a fresh process and returns one
`ExecResult` per program, in order. Status comes from how the process ended (exit code, signal,
the supervisor's own timeout), never from the text it printed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, Sequence


class ExecStatus(str, Enum):
    OK = "ok"
    ERROR = "error"  # the program raised or exited non-zero
    TIMEOUT = "timeout"  # wall-clock or CPU limit
    MEMORY = "memory"  # MemoryError under the address-space limit
    KILLED = "killed"  # ended by a signal it did not ask for (crash, OOM killer, lost worker)


@dataclass(frozen=True)
class ExecResult:
    status: ExecStatus
    stdout: str
    stderr: str
    exit_code: int | None
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.status is ExecStatus.OK

    @property
    def error_message(self) -> str:
        """One line for the model and for humans: the exception line, or how the process ended."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        if self.status is ExecStatus.TIMEOUT:
            return "TimeoutError: the program exceeded its time limit"
        if lines:
            return lines[-1].strip()
        return f"{self.status.value}: exit code {self.exit_code}"


class SandboxIsolationError(RuntimeError):
    """The sandbox could not isolate programs as configured; nothing was run."""


class SandboxUnavailableError(RuntimeError):
    """The chosen backend cannot run here (e.g. no Docker engine); the message says what to do."""


@dataclass(frozen=True)
class SandboxConfig:
    backend: str = field(default="local", metadata={"help": "local (forked workers) or docker"})
    isolation: str = field(default="strict", metadata={
        "help": "local backend: 'strict' (namespaces, own uid, seccomp; needs root) or 'none' (explicit opt-out)"})
    workers: int = field(default=0, metadata={"help": "parallel workers; 0 = number of CPUs"})
    timeout_s: float = field(default=5.0, metadata={"help": "wall-clock limit per program, seconds"})
    memory_mb: int = field(default=1024, metadata={"help": "address-space limit per program, MiB"})
    file_size_mb: int = field(default=16, metadata={"help": "largest file a program may write, MiB"})
    max_processes: int = field(default=8, metadata={"help": "processes and threads a program may have at once"})
    max_open_files: int = field(default=256, metadata={"help": "open file descriptors per process"})
    tmpfs_mb: int = field(default=256, metadata={"help": "size of each worker's private /tmp (strict mode), MiB"})
    max_output_bytes: int = field(default=65536, metadata={"help": "stdout/stderr kept per program; the rest is cut with a marker"})
    preload: tuple[str, ...] = field(default=("math", "fractions", "sympy", "numpy"), metadata={"help": "modules imported once per worker"})
    warmup: bool = field(default=True, metadata={"help": "exercise the preloaded modules once per worker, so children start warm"})
    docker_image: str = field(default="rstar-sandbox:latest", metadata={"help": "docker backend: image built from sandbox/Dockerfile"})
    docker_cpus: float = field(default=1.0, metadata={"help": "docker backend: CPUs per container"})
    cache_size: int = field(default=100_000, metadata={"help": "results kept for identical programs; 0 turns the cache off"})

    def __post_init__(self):
        if self.backend not in ("local", "docker"):
            raise ValueError(f"sandbox backend must be 'local' or 'docker', not {self.backend!r}")
        if self.isolation not in ("strict", "none"):
            raise ValueError(f"sandbox isolation must be 'strict' or 'none', not {self.isolation!r}")
        if self.timeout_s <= 0 or self.memory_mb <= 0 or self.workers < 0:
            raise ValueError("sandbox timeout_s and memory_mb must be positive, workers >= 0")


class Sandbox(Protocol):
    def run(self, programs: Sequence[str], timeout_s: float | None = None) -> list[ExecResult]: ...

    def close(self) -> None: ...


class ResultCache:
    """Bounded LRU of results keyed by (program, limits): identical programs run once."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple, ExecResult] = OrderedDict()
        self.hits = 0

    def get(self, key: tuple) -> ExecResult | None:
        result = self._items.get(key)
        if result is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return result

    def put(self, key: tuple, result: ExecResult) -> None:
        if self.size <= 0 or result.status in (ExecStatus.KILLED,):
            return  # a killed worker says nothing about the program: run it again next time
        self._items[key] = result
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
