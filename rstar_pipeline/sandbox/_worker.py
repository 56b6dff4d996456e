"""Sandbox worker process: runs each program it is sent in a fresh forked child.

Started by `LocalSandbox` as `python -I -X utf8 _worker.py '<json settings>'`, with an empty
environment. It speaks JSON lines: one request {"id", "code", "timeout_s"} in on stdin, one result
out on stdout. Standard library only, so nothing of the parent package is importable by programs.

Per program: fork; the child starts a new session (its own process group), closes stdin, sends
stdout/stderr to pipes, enters a fresh scratch directory, clears the environment, sets rlimits
and execs the code in a fresh namespace. The worker enforces the wall-clock limit from outside
(SIGKILL to the whole process group), kills whatever the program left behind in its group when it
ends, and derives the status from how the child ended, never from the output text.
"""

import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback

PROGRAM_FILE = "<program>"
STATUS_FD = 3  # the child writes b"m" here when the program ran out of memory


def main() -> None:
    settings = json.loads(sys.argv[1])
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)  # a program can never write into the protocol stream
    for module in settings.get("preload", []):
        __import__(module)  # imported once here, inherited by every forked child
    for line in proto_in:
        request = json.loads(line)
        result = run_one(request["code"], float(request["timeout_s"]), settings)
        result["id"] = request["id"]
        proto_out.write(json.dumps(result).encode() + b"\n")
        proto_out.flush()
    _remove_scratch_root(settings.get("scratch_root"))


def _remove_scratch_root(root) -> None:
    """End of input: the pool closed or died. Leave nothing behind in the temp dir."""
    if root:
        shutil.rmtree(root, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(root))  # the pool's folder, once its last worker is gone
        except OSError:
            pass


def run_one(code: str, timeout_s: float, settings: dict) -> dict:
    scratch = tempfile.mkdtemp(prefix="rstar-sbx-", dir=settings.get("scratch_root"))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(code, scratch, (out_w, err_w, st_w), timeout_s, settings)
    for fd in (out_w, err_w, st_w):
        os.close(fd)
    try:
        stdout, stderr, status, timed_out = _supervise(pid, out_r, err_r, start + timeout_s, settings)
        out_of_memory = not timed_out and b"m" in _read_ready(st_r)
    finally:
        os.close(st_r)
        shutil.rmtree(scratch, ignore_errors=True)
    return {"status": _status(status, timed_out, out_of_memory), "exit_code": _exit_code(status),
            "stdout": stdout, "stderr": stderr, "duration_s": time.monotonic() - start}


def _supervise(pid, out_r, err_r, deadline, settings):
    """Collect output until the child ends or the deadline passes; returns (out, err, wait status, timed_out)."""
    cap = int(settings["max_output_bytes"])
    chunks = {out_r: _Capped(cap), err_r: _Capped(cap)}
    pidfd = os.pidfd_open(pid)
    open_fds = [out_r, err_r]
    status, timed_out = None, False
    while status is None or open_fds:
        remaining = deadline - time.monotonic()
        if status is None and remaining <= 0:
            _kill_group(pid)
            timed_out = True
            status = os.waitpid(pid, 0)[1]
            deadline = time.monotonic() + 0.5  # a short drain of what is left in the pipes
            continue
        if status is not None and remaining <= 0:
            break  # descendants outside the group still hold the pipes open: stop reading
        ready, _, _ = select.select(open_fds + ([pidfd] if status is None else []), [], [], max(remaining, 0))
        for fd in ready:
            if fd == pidfd:
                _kill_group(pid)  # leftovers die with it; the unreaped child keeps the group id taken
                status = os.waitpid(pid, 0)[1]
                deadline = time.monotonic() + 0.5
                continue
            data = os.read(fd, 65536)
            if not data:
                open_fds.remove(fd)
            else:
                chunks[fd].add(data)
    for fd in (out_r, err_r, pidfd):
        os.close(fd)
    return chunks[out_r].text(), chunks[err_r].text(), status, timed_out


def _read_ready(fd) -> bytes:
    """What is in a pipe now, without waiting (a leftover descendant may still hold its write end)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 16)
    except BlockingIOError:
        return b""


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Capped:
    """Keeps the first and the last cap/2 bytes of a stream: the end holds the answer or the exception."""

    def __init__(self, cap: int):
        self.cap, self.size, self.head, self.tail = cap, 0, bytearray(), bytearray()

    def add(self, data: bytes) -> None:
        self.size += len(data)
        room = self.cap // 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail = (self.tail + data)[-(self.cap - self.cap // 2):]

    def text(self) -> str:
        if self.size <= self.cap:
            return (self.head + self.tail).decode("utf-8", "replace")
        head, tail = self.head.decode("utf-8", "replace"), self.tail.decode("utf-8", "replace")
        return f"{head}\n[output truncated at {self.cap} bytes: {self.size - self.cap} bytes cut here]\n{tail}"


def _status(status, timed_out, out_of_memory) -> str:
    if timed_out:
        return "timeout"
    if os.WIFSIGNALED(status):
        return "timeout" if os.WTERMSIG(status) == signal.SIGXCPU else "killed"
    if os.WEXITSTATUS(status) == 0:
        return "ok"
    return "memory" if out_of_memory else "error"


def _exit_code(status) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _child(code, scratch, fds, timeout_s, settings):
    exit_code = 1
    try:
        os.setsid()
        out_w, err_w, st_w = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(st_w, STATUS_FD)
        os.closerange(STATUS_FD + 1, 65536)
        os.chdir(scratch)
        os.environ.clear()
        os.environ.update({"HOME": scratch, "TMPDIR": scratch, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        _set_limits(timeout_s, settings)
        exit_code = _execute(code)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(exit_code)


def _set_limits(timeout_s, settings):
    mb = 1024 * 1024
    cpu = int(timeout_s) + 1
    limits = {
        resource.RLIMIT_AS: int(settings["memory_mb"]) * mb,
        resource.RLIMIT_CPU: cpu,
        resource.RLIMIT_FSIZE: int(settings["file_size_mb"]) * mb,
        resource.RLIMIT_CORE: 0,
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def _execute(code: str) -> int:
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(code, PROGRAM_FILE, "exec"), namespace)
        return 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except MemoryError:
        print("MemoryError: the program ran out of memory", file=sys.stderr)
        os.write(STATUS_FD, b"m")
        return 1
    except BaseException as e:  # the program's own error: report it as Python would
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != PROGRAM_FILE:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
        return 1


if __name__ == "__main__":
    main()
