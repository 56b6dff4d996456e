"""Symbolic comparison (math-verify and sympy) in a worker process that is killed when it overruns.

math-verify's own timeouts are signal based and sympy can spend unbounded time or memory on hostile
input (`10^{10^{10^{10}}}`), so every symbolic comparison runs in one long-lived child process
(`python -m rstar_pipeline.grading.verifier`, JSON lines over its stdin and stdout). Inside the child,
math-verify's timeouts stop most overruns and the child lives on; the parent waits one second more
and then kills the child, which is restarted on the next call, for what they cannot interrupt. The
child has an address-space limit. One comparison at a time (a lock); the child starts on first use.
Nothing evaluates the answer text as code: math-verify parses LaTeX into sympy objects.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from typing import Sequence

STARTUP_S = 30.0  # the first request also waits for the child to import math-verify and sympy
_LOCK = threading.Lock()
_WORKER: "_Worker | None" = None


def verify(prediction: str, answers: Sequence[str], timeout_s: float, memory_mb: int = 2048) -> bool:
    """True when math-verify finds `prediction` equal to one of `answers` within about `timeout_s`."""
    global _WORKER
    inner = max(1, int(timeout_s))
    with _LOCK:
        if _WORKER is None or not _WORKER.alive():
            _WORKER = _Worker(memory_mb)
        result = _WORKER.ask({"prediction": prediction, "answers": list(answers), "timeout": inner}, inner + 1.0)
        if result is None:  # overran or died: never reuse a child that may still be computing
            _WORKER.kill()
            _WORKER = None
        return bool(result)


class _Worker:
    def __init__(self, memory_mb: int):
        env = {**os.environ, "RSTAR_GRADER_MEMORY_MB": str(memory_mb)}
        self.process = subprocess.Popen([sys.executable, "-m", "rstar_pipeline.grading.verifier"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        self.warm = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: dict, timeout_s: float) -> bool | None:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            wait = timeout_s if self.warm else timeout_s + STARTUP_S
            self.warm = True
            ready, _, _ = select.select([self.process.stdout], [], [], wait)
            line = self.process.stdout.readline() if ready else ""
            return json.loads(line)["equal"] if line else None
        except (OSError, ValueError, KeyError):
            return None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)


def _serve() -> None:
    import logging
    import resource

    limit = int(os.environ.get("RSTAR_GRADER_MEMORY_MB", "2048")) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.disable(logging.WARNING)  # math-verify logs every timeout
    from math_verify import parse, verify as mv_verify

    for line in sys.stdin:
        request = json.loads(line)
        equal = _compare(parse, mv_verify, request["prediction"], request["answers"], request["timeout"])
        print(json.dumps({"equal": equal}), flush=True)


def _compare(parse, mv_verify, prediction: str, answers: list[str], timeout: int) -> bool:
    try:
        pred = parse(f"${prediction}$", parsing_timeout=timeout)
        if not pred:
            return False
        for answer in answers:
            gold = parse(f"${answer}$", parsing_timeout=timeout)
            if gold and mv_verify(gold, pred, timeout_seconds=timeout):
                return True
    except Exception:  # odd input (or the memory limit) makes math-verify or sympy raise: not a match
        return False
    return False


if __name__ == "__main__":
    _serve()
