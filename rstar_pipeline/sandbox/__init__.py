"""Execution of model-written programs: the `Sandbox` protocol and its backends.

`make_sandbox(config)` returns a backend; every backend runs each program in a fresh process with
a wall-clock limit enforced from outside and reports an `ExecResult` per program.
"""

from rstar_pipeline.sandbox.base import (ExecResult, ExecStatus, ResultCache, Sandbox, SandboxConfig,
                                         SandboxIsolationError, SandboxUnavailableError)


def make_sandbox(config: SandboxConfig = SandboxConfig()) -> Sandbox:
    if config.backend == "local":
        from rstar_pipeline.sandbox.local import LocalSandbox

        return LocalSandbox(config)
    from rstar_pipeline.sandbox.docker import DockerSandbox

    return DockerSandbox(config)


__all__ = ["ExecResult", "ExecStatus", "ResultCache", "Sandbox", "SandboxConfig", "SandboxIsolationError", "SandboxUnavailableError",
           "make_sandbox"]
