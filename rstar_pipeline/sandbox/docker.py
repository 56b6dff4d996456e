"""Docker sandbox backend: warm, long-lived, locked-down containers, one worker session in each.

Each container runs the image built from `sandbox/Dockerfile` with no network, a non-root user,
no capabilities, no_new_privs, a read-only root with a tmpfs work dir, and pids, memory and CPU
limits. A worker (`_worker.py` in `container` mode) is started in it with `docker exec -i` and
speaks the same protocol as the local backend: it kills a program at its time limit inside the
container, and the pool (client side) replaces a container whose worker dies or stops answering.
Needs a running Docker engine; `DockerSandbox` raises `SandboxUnavailableError` where none runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

from rstar_pipeline.sandbox.base import SandboxConfig, SandboxUnavailableError
from rstar_pipeline.sandbox.local import worker_settings
from rstar_pipeline.sandbox.pool import Worker, WorkerPool

WORKER_PATH = "/opt/rstar/_worker.py"
WORK_DIR = "/work"
SANDBOX_USER = "10001:10001"
LABEL = "rstar-sandbox=1"


def container_args(config: SandboxConfig, name: str) -> list[str]:
    """`docker run` arguments for one sandbox container."""
    memory = f"{config.memory_mb * 2 + 256}m"  # the worker plus one program at its address-space limit
    return [
        "docker", "run", "--detach", "--rm", "--init", "--name", name, "--label", LABEL,
        "--network", "none",
        "--user", SANDBOX_USER,
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--read-only",
        "--tmpfs", f"{WORK_DIR}:rw,nosuid,nodev,noexec,size={config.tmpfs_mb}m,uid=10001,gid=10001,mode=0700",
        "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=16m",
        "--pids-limit", str(config.max_processes + 4),
        "--memory", memory, "--memory-swap", memory,
        "--cpus", str(config.docker_cpus),
        "--ulimit", f"nofile={config.max_open_files}:{config.max_open_files}",
        "--ulimit", "core=0:0",
        config.docker_image, "sleep", "infinity",
    ]


def exec_args(config: SandboxConfig, name: str) -> list[str]:
    """`docker exec` arguments that start a worker session in container `name`."""
    settings = worker_settings(config, isolation="container", scratch_root=f"{WORK_DIR}/scratch", container_init="docker-init")
    return ["docker", "exec", "--interactive", name, "python", "-I", "-X", "utf8", WORKER_PATH, json.dumps(settings)]


def engine_problem() -> str | None:
    """None if a Docker engine answers, else why not (for errors and test skips)."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return None
    except Exception as e:  # noqa: BLE001 - any failure means the backend cannot run here
        return f"no Docker engine is reachable ({type(e).__name__}: {e})"


class DockerSandbox(WorkerPool):
    def __init__(self, config: SandboxConfig):
        problem = engine_problem()
        if problem:
            raise SandboxUnavailableError(f"docker sandbox backend: {problem}; use backend='local'")
        super().__init__(config)

    def pool_size(self) -> int:
        return self.config.workers or os.cpu_count() or 1

    def new_worker(self) -> Worker:
        name = f"rstar-sbx-{uuid.uuid4().hex[:12]}"
        started = subprocess.run(container_args(self.config, name), capture_output=True, text=True)
        if started.returncode != 0:
            raise SandboxUnavailableError(
                f"could not start a sandbox container from {self.config.docker_image}: {started.stderr.strip()} "
                f"(build the image: docker build -f sandbox/Dockerfile -t {self.config.docker_image} .)")
        remove = lambda: subprocess.run(["docker", "rm", "--force", name], capture_output=True)
        try:
            return Worker(exec_args(self.config, name), dict(os.environ), on_discard=remove)
        except Exception:
            remove()
            raise
