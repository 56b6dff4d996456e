"""The Docker backend: its container and exec arguments (always), the worker's `container` mode in a
namespace box that stands where a container stands (where `unshare` works), and real containers
(only where a Docker engine runs; skipped with the reason otherwise)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from rstar_pipeline.sandbox import ExecStatus, SandboxConfig, SandboxIsolationError, SandboxUnavailableError, make_sandbox
from rstar_pipeline.sandbox.docker import container_args, engine_problem, exec_args
from rstar_pipeline.sandbox.local import WORKER, WORKER_ENV, worker_settings
from rstar_pipeline.sandbox.pool import Worker, WorkerPool

CONFIG = SandboxConfig(memory_mb=512, max_processes=6, max_open_files=128, tmpfs_mb=64, docker_cpus=0.5)


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_container_is_locked_down():
    """docker run: no network, non-root user, no capabilities, no_new_privs, read-only root, limits."""
    args = container_args(CONFIG, "box")
    assert args[:2] == ["docker", "run"] and "--rm" in args and "--init" in args and "--read-only" in args
    assert flag_values(args, "--network") == ["none"]
    assert flag_values(args, "--user") == ["10001:10001"]
    assert flag_values(args, "--cap-drop") == ["ALL"]
    assert flag_values(args, "--security-opt") == ["no-new-privileges"]
    assert flag_values(args, "--pids-limit") == ["10"]
    assert flag_values(args, "--memory") == flag_values(args, "--memory-swap") == ["1280m"]  # no swap
    assert flag_values(args, "--cpus") == ["0.5"]
    tmpfs = flag_values(args, "--tmpfs")
    assert any(t.startswith("/work:") and "size=64m" in t and "noexec" in t for t in tmpfs)
    assert "nofile=128:128" in flag_values(args, "--ulimit") and "core=0:0" in flag_values(args, "--ulimit")
    assert args[-3:] == [CONFIG.docker_image, "sleep", "infinity"]


def test_exec_starts_the_worker_in_container_mode():
    """docker exec -i starts the same worker, in container mode, with the run's limits."""
    args = exec_args(CONFIG, "box")
    assert args[:4] == ["docker", "exec", "--interactive", "box"]
    assert args[4:9] == ["python", "-I", "-X", "utf8", "/opt/rstar/_worker.py"]
    settings = json.loads(args[-1])
    assert settings["isolation"] == "container" and settings["container_init"] == "docker-init"
    assert (settings["memory_mb"], settings["max_processes"]) == (512, 6)
    assert "import" in settings["warmup"]


def test_dockerfile_matches_the_backend():
    """The image has the worker where exec_args looks for it, a non-root user and sympy/numpy."""
    dockerfile = (WORKER.parents[2] / "sandbox" / "Dockerfile").read_text()
    assert "COPY rstar_pipeline/sandbox/_worker.py /opt/rstar/_worker.py" in dockerfile
    assert "USER 10001:10001" in dockerfile and "sympy" in dockerfile and "numpy" in dockerfile


def test_without_engine_the_backend_says_so():
    """Where no engine runs, choosing the docker backend fails with a clear, actionable error."""
    problem = engine_problem()
    if problem is None:
        pytest.skip("a Docker engine runs here")
    with pytest.raises(SandboxUnavailableError, match="no Docker engine.*backend='local'"):
        make_sandbox(SandboxConfig(backend="docker"))


# ---------------------------------------------------------------- container mode in a namespace box


def can_unshare() -> str | None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        return "needs root with unshare and nsenter"
    if subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode:
        return "PID namespaces are not available here"
    return None


class NamespaceBox(WorkerPool):
    """Stands where a Docker container stands (the engine cannot run here): a PID, mount and network
    namespace made with `unshare`, whose init is `sleep`; workers enter it with `nsenter`."""

    def __init__(self, config: SandboxConfig):
        super().__init__(config)
        self.box = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--net", "--", "sleep", "infinity"])
        for _ in range(100):
            children = open(f"/proc/{self.box.pid}/task/{self.box.pid}/children").read().split()
            if children:
                self.init = int(children[0])
                break
            time.sleep(0.02)

    def pool_size(self) -> int:
        return 1

    def new_worker(self) -> Worker:
        settings = worker_settings(self.config, isolation="container", scratch_root="/tmp/box-scratch",
                                   container_init="sleep")
        argv = ["nsenter", "--target", str(self.init), "--pid", "--mount", "--net", "--",
                sys.executable, "-I", "-X", "utf8", str(WORKER), json.dumps(settings)]
        return Worker(argv, WORKER_ENV)

    def close(self) -> None:
        super().close()
        os.kill(self.init, 9)  # the namespace's init: everything in the box dies with it
        self.box.wait()


@pytest.fixture(scope="module")
def box():
    reason = can_unshare()
    if reason:
        pytest.skip(reason)
    with NamespaceBox(SandboxConfig(timeout_s=2, cache_size=0)) as b:
        yield b


def test_container_mode_runs_programs_exactly(box):
    """Inside the box the worker runs programs with exact output."""
    r = box.execute("from fractions import Fraction\nprint(Fraction(1, 3) + Fraction(1, 6), 2**100)")
    assert (r.status, r.stdout) == (ExecStatus.OK, "1/2 1267650600228229401496703205376\n")
    assert any("seccomp" in line for line in box.isolation)


def test_container_mode_denies_sockets(box):
    """The seccomp filter denies socket() inside the container as well."""
    r = box.execute("import socket\nsocket.socket()")
    assert r.status is ExecStatus.ERROR and "PermissionError" in r.error_message


def test_container_mode_kills_leftover_processes(box):
    """A double-forked daemon does not outlive its program: the worker kills every stray it sees."""
    r = box.execute("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                    "        time.sleep(61.25)\n    os._exit(0)\nprint('done')")
    assert r.ok
    time.sleep(0.2)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and b"61.25" in _cmdline(p)]


def test_container_mode_enforces_the_time_limit(box):
    """An endless loop is killed at its limit and the worker serves the next program."""
    r = box.execute("while True:\n    pass", timeout_s=1)
    assert r.status is ExecStatus.TIMEOUT
    assert box.execute("print('next')").stdout == "next\n"


def test_container_mode_refuses_to_run_on_the_host():
    """Container mode kills every process it can see, so outside a container it does not start."""
    settings = worker_settings(SandboxConfig(), isolation="container", scratch_root="/tmp/x", container_init="sleep")
    with pytest.raises(SandboxIsolationError, match="inside the sandbox container"):
        Worker([sys.executable, "-I", str(WORKER), json.dumps(settings)], WORKER_ENV)


def _cmdline(pid: str) -> bytes:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""


# ---------------------------------------------------------------- real containers


@pytest.fixture(scope="module")
def docker_sandbox():
    problem = engine_problem()
    if problem:
        pytest.skip(f"Docker tests need a running engine: {problem}")
    with make_sandbox(SandboxConfig(backend="docker", timeout_s=2, workers=1)) as sb:
        yield sb


def test_docker_runs_math_exactly(docker_sandbox):
    """A real container runs sympy with exact output."""
    r = docker_sandbox.execute("from sympy import symbols, solve\nx = symbols('x')\nprint(solve(x**2 - 2, x))")
    assert r.stdout == "[-sqrt(2), sqrt(2)]\n"


def test_docker_has_no_network_and_kills_on_timeout(docker_sandbox):
    """No network in the container; an endless loop is killed and the next program runs."""
    assert docker_sandbox.execute("import socket\nsocket.create_connection(('1.1.1.1', 53), 2)").status \
        is ExecStatus.ERROR
    assert docker_sandbox.execute("while True:\n    pass", timeout_s=1).status is ExecStatus.TIMEOUT
    assert docker_sandbox.execute("print(1)").ok
