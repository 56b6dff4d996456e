"""Sandbox worker process: runs each program it is sent in a fresh, isolated child.

Started by the pool as `python -I -X utf8 _worker.py '<json settings>'` with an empty environment
(locally), or inside a container (Docker backend). Standard library only. Protocol, JSON lines:
first the worker says {"ready": true, "isolation": [...]} (or {"ready": false, "error": ...} and
exits: isolation that cannot be set up fails closed); then one request {"id", "code",
"timeout_s"} in on stdin, one result out on stdout.

Isolation modes (settings["isolation"]):
  strict     (local default, needs root) the worker becomes PID 1 of its own PID namespace (and
             dies with the process the pool started), in an empty network namespace and a private
             mount namespace (its own /proc; tmpfs over /run, /tmp, /var/tmp, /dev/shm and over
             unreadable ancestors of the Python installation such as /root; the installation itself
             stays visible wherever it lives). Each program is forked with a fresh dir in /tmp as cwd,
             runs as a dedicated non-root uid with an empty capability bounding set, no_new_privs and
             a seccomp filter (no sockets, no SysV IPC, ...); when it ends, the worker kills every
             other process of its namespace (kill -1 from init) and empties the temp dirs before
             answering.
  container  (inside the Docker backend's container) fork per program, no_new_privs, seccomp;
             the container provides namespaces; leftovers are killed by scanning /proc.
  none       (explicit opt-out) fork per program in its own session; rlimits only.
Every mode: a fresh scratch directory as cwd and HOME, an empty environment, stdin closed,
rlimits (address space, CPU, processes, open files, file size, no core), fixed random seeds, the
wall-clock limit enforced from outside with SIGKILL, and the status taken from how the process
ended.
"""

import ctypes
import gc
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
import traceback

PROGRAM_FILE = "<program>"
STATUS_FD = 3  # the child writes b"m" here when the program ran out of memory

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
NAMESPACE_FLAGS = 0x7E020080  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 1 << 14, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, SECCOMP_MODE_FILTER = 1, 24, 22, 38, 2
UID_BASE = 200_000  # strict mode runs programs as UID_BASE + worker pid: unique among live workers

# syscalls a math program never needs; denied with EPERM (clone3 with ENOSYS, so libc falls back to clone)
DENIED = ("socket", "ptrace", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "bpf",
          "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup",
          "io_uring_enter", "io_uring_register", "kexec_load", "init_module", "finit_module",
          "delete_module", "reboot", "swapon", "swapoff", "process_vm_readv", "process_vm_writev",
          "open_by_handle_at", "name_to_handle_at", "shmget", "shmat", "shmctl", "semget", "semop",
          "semctl", "semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl")
ARCHES = {
    "x86_64": {"audit": 0xC000003E, "x32": True, "clone": 56, "clone3": 435, "prctl": 157, "nr": {
        "socket": 41, "ptrace": 101, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250,
        "add_key": 248, "request_key": 249, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "kexec_load": 246, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "process_vm_readv": 310,
        "process_vm_writev": 311, "open_by_handle_at": 304, "name_to_handle_at": 303, "shmget": 29,
        "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220, "msgget": 68,
        "msgsnd": 69, "msgrcv": 70, "msgctl": 71}},
    "aarch64": {"audit": 0xC00000B7, "x32": False, "clone": 220, "clone3": 435, "prctl": 167, "nr": {
        "socket": 198, "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219,
        "add_key": 217, "request_key": 218, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "kexec_load": 104, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225, "process_vm_readv": 270,
        "process_vm_writev": 271, "open_by_handle_at": 265, "name_to_handle_at": 264, "shmget": 194,
        "shmat": 196, "shmctl": 195, "semget": 190, "semop": 193, "semctl": 191, "semtimedop": 192,
        "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187}},
}

libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(RuntimeError):
    pass


def main() -> None:
    settings = json.loads(sys.argv[1])
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)  # a program can never write into the protocol stream

    def send(message: dict) -> None:
        proto_out.write(json.dumps(message).encode() + b"\n")
        proto_out.flush()

    try:
        jail = Jail(settings)
        for module in settings.get("preload", []):
            __import__(module)  # imported once here, inherited by every child
        if settings.get("warmup"):
            exec(settings["warmup"], {})  # trusted: loads sympy's lazy submodules once, not per program
        gc.freeze()  # children share the worker's objects without the collector touching them
    except Exception as e:  # noqa: BLE001 - any failure to set up is reported, then the worker exits
        where = traceback.extract_tb(e.__traceback__)[-1]
        send({"ready": False, "error": f"{type(e).__name__}: {e} (in {where.name}, line {where.lineno})"})
        return
    send({"ready": True, "isolation": jail.report})
    for line in proto_in:
        request = json.loads(line)
        result = jail.run(request["code"], float(request["timeout_s"]))
        result["id"] = request["id"]
        send(result)
    jail.close()


# ---------------------------------------------------------------- setting up the worker


class Jail:
    def __init__(self, settings: dict):
        self.settings = settings
        self.mode = settings.get("isolation", "strict")
        self.arch = ARCHES.get(platform.machine())
        self.uid = self.gid = None
        self.cgroups = None
        self.seccomp = None
        self.temp_dirs: list[str] = []
        self.report: list[str] = []
        if self.mode == "strict":
            self._strict_setup()
        elif self.mode == "container":
            _check_container(settings.get("container_init", "sleep"))
            self.baseline = set(_live_pids())  # the container's init, its child, this worker: never killed
            self.scratch_root = settings["scratch_root"]
            self.seccomp = self._seccomp_program()
            self.report = ["namespaces, read-only root, capabilities and limits: the container's (docker run flags)",
                           "no_new_privs; seccomp denies " + ", ".join(DENIED[:6]) + ", ...",
                           "leftover processes killed after each program (scan of the container's /proc)"]
        elif self.mode == "none":
            self.scratch_root = settings["scratch_root"]
            self.report = ["NO ISOLATION (opted out): fresh process, own session, rlimits, empty environment only"]
        else:
            raise IsolationError(f"unknown isolation mode {self.mode!r}")
        os.makedirs(self.scratch_root, exist_ok=True)
        self.report.append(_limits_report(settings))

    def _strict_setup(self) -> None:
        if os.geteuid() != 0:
            raise IsolationError("strict isolation needs root (network, mount and PID namespaces and a dedicated "
                                 "uid); run as root, use the docker backend, or opt out with isolation='none'")
        if self.arch is None:
            raise IsolationError(f"strict isolation supports x86_64 and aarch64, not {platform.machine()}")
        self.uid = self.gid = UID_BASE + os.getpid()  # the host pid: unique among live workers
        # the worker joins its cgroups once (moving a task between cgroups costs milliseconds); programs
        # inherit them
        self.cgroups = Cgroups(str(os.getpid()), (2 * int(self.settings["memory_mb"]) + 256) << 20,
                               int(self.settings.get("max_processes", 8)) + 2)
        self.cgroups.join()
        _unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID)
        _become_namespace_init()
        interfaces = [name for _, name in socket.if_nameindex()]
        if interfaces != ["lo"]:
            raise IsolationError(f"the new network namespace is not empty: {interfaces}")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this namespace's processes only
        masked = _private_filesystem(int(self.settings.get("tmpfs_mb", 256)))
        self.temp_dirs = [d for d in TEMP_DIRS if d in masked]
        self.scratch_root = "/tmp"
        _empty_bounding_set()  # inherited by every child; the worker keeps its own effective capabilities
        self.seccomp = self._seccomp_program()
        self.report = [
            "network: empty network namespace per worker (loopback down; no TCP, UDP or abstract sockets)",
            f"filesystem: private mount namespace; tmpfs over {', '.join(masked)} (only the Python installation "
            "shows through); /tmp, /var/tmp, /dev/shm emptied after each program; a fresh scratch dir as cwd",
            "processes: the worker is init of its own PID namespace; after each program every other process "
            "in it is killed; all of it dies with the worker",
            f"user: uid/gid {self.uid} (non-root, no supplementary groups); capability bounding set emptied",
            "no_new_privs; seccomp denies " + ", ".join(DENIED[:6]) + f" and {len(DENIED) - 6} more (SysV IPC "
            "included), namespace flags in clone, and clearing the parent-death signal",
            "/proc: the worker's namespace only; environment empty; stdin closed",
            self.cgroups.report,
        ]

    def _seccomp_program(self):
        if self.arch is None:
            raise IsolationError(f"no seccomp syscall table for {platform.machine()}")
        return _fprog(_seccomp_filter(self.arch))

    def close(self) -> None:
        # strict: the pool removes this worker's cgroups once it is gone (they cannot go while it is in them)
        if self.mode != "strict":
            shutil.rmtree(self.settings["scratch_root"], ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(self.settings["scratch_root"]))  # the pool's folder, once empty
            except (OSError, KeyError):
                pass

    # ------------------------------------------------------------ one program

    def run(self, code: str, timeout_s: float) -> dict:
        scratch = tempfile.mkdtemp(dir=self.scratch_root)
        if self.uid is not None:
            os.chown(scratch, self.uid, self.gid)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        st_r, st_w = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._child(code, scratch, (out_w, err_w, st_w), timeout_s)
        for fd in (out_w, err_w, st_w):
            os.close(fd)
        try:
            stdout, stderr, status, timed_out = _supervise(pid, out_r, err_r, start + timeout_s, self.settings,
                                                           self._kill)
            out_of_memory = not timed_out and b"m" in _read_ready(st_r)
            self.after()
        finally:
            os.close(st_r)
            _empty(scratch)
            _rmdir(scratch)
        return {"status": _status(status, timed_out, out_of_memory), "exit_code": _exit_code(status),
                "stdout": stdout, "stderr": stderr, "duration_s": time.monotonic() - start}

    def _kill(self, pid: int) -> None:
        """Kill the program and everything it started (called while its process is still unreaped)."""
        if self.mode == "strict":
            _signal(os.kill, -1)  # from init: every process of the namespace but the worker itself
        else:
            _signal(os.killpg, pid)
        if self.mode == "container":
            _kill_strays(keep=self.baseline | {pid})  # the supervisor reaps `pid` itself

    def after(self) -> None:
        """Strict mode: reap what was killed, then empty the temp dirs: nothing of the program is left."""
        if self.mode != "strict":
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                break  # no children left: only the worker remains in its namespace
            _signal(os.kill, -1)
            time.sleep(0.001)
        for path in self.temp_dirs:
            _empty(path)

    def _child(self, code, scratch, fds, timeout_s):
        exit_code = 1
        try:
            os.setsid()
            _fresh_signals()
            out_w, err_w, st_w = fds
            devnull = os.open(os.devnull, os.O_RDONLY)
            for src, dst in ((devnull, 0), (out_w, 1), (err_w, 2), (st_w, STATUS_FD)):
                os.dup2(src, dst)
            os.closerange(STATUS_FD + 1, 65536)
            if self.mode == "strict":
                _write("/proc/self/oom_score_adj", "1000")  # under memory pressure the program goes first
            os.chdir(scratch)
            os.environ.clear()
            os.environ.update({"HOME": scratch, "TMPDIR": scratch, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
            _set_limits(timeout_s, self.settings)
            if self.mode == "strict":
                _drop_privileges(self.uid, self.gid)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which would clear it
            _fixed_seeds()
            if self.mode != "none":
                _prctl(PR_SET_NO_NEW_PRIVS, 1)
                _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self.seccomp))
            exit_code = _execute(code)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(exit_code)


# ---------------------------------------------------------------- supervision


def _supervise(pid, out_r, err_r, deadline, settings, kill):
    """Collect output until the child ends or the deadline passes; returns (out, err, wait status, timed_out)."""
    cap = int(settings["max_output_bytes"])
    chunks = {out_r: _Capped(cap), err_r: _Capped(cap)}
    pidfd = os.pidfd_open(pid)
    open_fds = [out_r, err_r]
    status, timed_out = None, False
    while status is None or open_fds:
        remaining = deadline - time.monotonic()
        if status is None and remaining <= 0:
            kill(pid)
            timed_out = True
            status = os.waitpid(pid, 0)[1]
            deadline = time.monotonic() + 0.5  # a short drain of what is left in the pipes
            continue
        if status is not None and remaining <= 0:
            break  # something outside our reach still holds the pipes open: stop reading
        ready, _, _ = select.select(open_fds + ([pidfd] if status is None else []), [], [], max(remaining, 0))
        for fd in ready:
            if fd == pidfd:
                kill(pid)  # leftovers die with it; the unreaped child keeps its pid from being reused
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


def _empty(path: str) -> None:
    """Remove everything below `path` on its own filesystem. Never crosses a mount point (the Python
    installation may be bound below /tmp) and never recurses (a program may nest dirs deeply)."""
    try:
        device = os.lstat(path).st_dev
    except FileNotFoundError:
        return
    stack, dirs = [path], []
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != device:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
                dirs.append(entry.path)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
    for d in reversed(dirs):  # deepest first
        _rmdir(d)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # holds a mount point, or is gone


def _read_ready(fd) -> bytes:
    """What is in a pipe now, without waiting (a leftover process may still hold its write end)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 16)
    except BlockingIOError:
        return b""


def _signal(send, pid) -> None:
    try:
        send(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _check_container(init: str) -> None:
    """Container mode kills every process it can see, so it must see only its container's."""
    argv0 = open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
    if os.path.basename(argv0) != init:
        raise IsolationError(f"container mode must run inside the sandbox container (PID 1 is {argv0!r}, "
                             f"expected {init!r})")


def _kill_strays(keep: set[int]) -> None:
    """Container mode: kill every live process of the container but `keep` (the container's init reaps
    them); the container's own processes were recorded when the worker started."""
    for _ in range(50):  # a forking program can race the scan a few times; its rlimits bound that
        strays = [p for p in _live_pids() if p not in keep]
        if not strays:
            return
        for p in strays:
            _signal(os.kill, p)


def _live_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state = open(f"/proc/{entry}/stat", "rb").read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue  # gone meanwhile
            if state not in (b"Z", b"X"):
                pids.append(int(entry))
    return pids


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


# ---------------------------------------------------------------- inside the child


def _set_limits(timeout_s, settings):
    mb = 1024 * 1024
    limits = {
        resource.RLIMIT_AS: int(settings["memory_mb"]) * mb,
        resource.RLIMIT_CPU: int(timeout_s) + 1,
        resource.RLIMIT_FSIZE: int(settings["file_size_mb"]) * mb,
        resource.RLIMIT_NOFILE: int(settings.get("max_open_files", 256)),
        resource.RLIMIT_NPROC: int(settings.get("max_processes", 8)),
        resource.RLIMIT_CORE: 0,
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def _limits_report(settings) -> str:
    return (f"rlimits: address space {settings['memory_mb']} MiB, CPU = timeout + 1 s, "
            f"{settings.get('max_processes', 8)} processes, {settings.get('max_open_files', 256)} open files, "
            f"files up to {settings['file_size_mb']} MiB, no core dumps; wall clock enforced by the worker")


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror}: writing {text!r} to {path}") from e


class Cgroups:
    """Best effort, as root: a memory and a pids cgroup per worker that each program joins, bounding its
    whole process tree (tmpfs pages included). Absent or read-only cgroup filesystems are reported."""

    ROOT = "/sys/fs/cgroup"

    def __init__(self, tag: str, memory_bytes: int, tasks: int):
        self.dirs: list[str] = []
        limits = {"memory": ("memory.limit_in_bytes", memory_bytes), "pids": ("pids.max", tasks)}
        try:
            if os.path.exists(f"{self.ROOT}/cgroup.controllers"):
                self._v2(tag, memory_bytes, tasks)
            else:
                for controller, (name, value) in limits.items():
                    self.dirs.append(self._make(f"{self.ROOT}/{controller}/rstar-sandbox", tag, {name: value}))
            self.report = (f"cgroup: a worker and its program's whole process tree are held to "
                           f"{memory_bytes >> 20} MiB of memory (tmpfs included) and {tasks} tasks; "
                           f"the OOM killer takes the program first")
        except OSError as e:
            self.close()
            self.report = f"cgroup: not available ({e.strerror or e}); rlimits only"

    def _v2(self, tag, memory_bytes, tasks):
        base = f"{self.ROOT}/rstar-sandbox"
        os.makedirs(base, exist_ok=True)
        for parent in (self.ROOT, base):
            with open(f"{parent}/cgroup.subtree_control", "w") as f:
                f.write("+memory +pids")
        self.dirs.append(self._make(base, tag, {"memory.max": memory_bytes, "pids.max": tasks}))

    @staticmethod
    def _make(base: str, tag: str, values: dict) -> str:
        os.makedirs(base, exist_ok=True)
        for stale in os.listdir(base):  # groups of workers that were killed: remove once empty
            if stale.isdigit() and not os.path.exists(f"/proc/{stale}"):
                try:
                    os.rmdir(f"{base}/{stale}")
                except OSError:
                    pass
        path = f"{base}/{tag}"
        os.makedirs(path, exist_ok=True)
        for name, value in values.items():
            with open(f"{path}/{name}", "w") as f:
                f.write(str(value))
        return path

    def join(self) -> None:
        for path in self.dirs:
            _write(f"{path}/cgroup.procs", "0")

    def close(self) -> None:
        for path in self.dirs:
            try:
                os.rmdir(path)
            except OSError:
                pass
        self.dirs = []


def _become_namespace_init() -> None:
    """After unshare(CLONE_NEWPID): fork once; the child is PID 1 of the new namespace and goes on as
    the worker, the parent waits and passes on its exit. The worker dies with that parent (which the
    pool kills), and the kernel then kills everything in the namespace."""
    pid = os.fork()
    if pid > 0:
        os.closerange(3, 65536)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _fresh_signals() -> None:
    """Signal dispositions and mask as a fresh `python program.py` has them. An ignored or blocked
    signal survives fork and exec, so without this a program would inherit whatever the process that
    started the sandbox ignored or blocked (nohup ignores SIGHUP; a thread may block SIGTERM), and e.g.
    `os.kill(os.getpid(), signal.SIGTERM)` would not end it."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # signals the C library reserves for itself
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # what the interpreter ignores at startup
        signal.signal(sig, signal.SIG_IGN)


def _fixed_seeds() -> None:
    """Programs are deterministic: random (reseeded at fork) and numpy start from fixed states."""
    if "random" in sys.modules:
        sys.modules["random"].seed(0)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(0)


TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def _private_filesystem(tmpfs_mb: int) -> list[str]:
    """In the worker's mount namespace, cover with empty tmpfs: /run (host sockets), the temp dirs, and
    every ancestor of the Python installation that others may not traverse (e.g. /root). The
    installation (interpreter prefix, venv, site-packages) stays visible wherever it lives, even under
    a covered dir: it is bound back from descriptors opened before covering."""
    import site

    needed = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, *site.getsitepackages())})
    unreadable = {_first_unreadable_ancestor(p) for p in needed} - {None}
    options = {"/run": "size=1m,mode=755", "/tmp": f"size={tmpfs_mb}m,nr_inodes=16384,mode=1777",
               "/var/tmp": "size=16m,nr_inodes=1024,mode=1777", "/dev/shm": "size=16m,nr_inodes=1024,mode=1777"}
    options.update({path: "size=1m,mode=755" for path in unreadable})
    kept = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in needed}
    masked = []
    for path, opts in sorted(options.items()):
        if os.path.isdir(path) and not os.path.islink(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
            masked.append(path)
    for path, fd in kept.items():
        if any(path == m or path.startswith(m + "/") for m in masked):
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    return masked


def _first_unreadable_ancestor(path: str) -> str | None:
    parts = path.split("/")
    for i in range(2, len(parts)):
        ancestor = "/".join(parts[:i])
        if not os.stat(ancestor).st_mode & 0o001:  # others may not traverse it
            return ancestor
    return None


def _empty_bounding_set() -> None:
    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last_cap + 1):
        _prctl(PR_CAPBSET_DROP, cap)


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # from root to a non-root uid: permitted and effective capabilities are cleared


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


# ---------------------------------------------------------------- system calls


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise IsolationError(f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(libc.unshare(flags), "unshare")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if s is not None else None
    _check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _prctl(option: int, arg2: int, arg3: int = 0) -> None:
    _check(libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0), f"prctl {option}")


def _seccomp_filter(arch: dict) -> bytes:
    """A BPF program: other architectures are killed; DENIED syscalls, namespace clones and
    prctl(PR_SET_PDEATHSIG) get EPERM."""
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill, eperm, enosys = 0x7FFF0000, 0x80000000, 0x00050000 | 1, 0x00050000 | 38
    ins = [(ld, 0, 0, 4), (jeq, 1, 0, arch["audit"]), (ret, 0, 0, kill), (ld, 0, 0, 0)]
    if arch["x32"]:
        ins += [(jge, 0, 1, 0x40000000), (ret, 0, 0, kill)]
    for name in DENIED:
        ins += [(jeq, 0, 1, arch["nr"][name]), (ret, 0, 0, eperm)]
    ins += [(jeq, 0, 1, arch["clone3"]), (ret, 0, 0, enosys)]
    ins += [(jeq, 0, 4, arch["prctl"]), (ld, 0, 0, 16), (jeq, 0, 1, PR_SET_PDEATHSIG), (ret, 0, 0, eperm),
            (ret, 0, 0, allow)]
    ins += [(jeq, 0, 3, arch["clone"]), (ld, 0, 0, 16), (jset, 0, 1, NAMESPACE_FLAGS), (ret, 0, 0, eperm)]
    ins += [(ret, 0, 0, allow)]
    return b"".join(struct.pack("HBBI", *i) for i in ins)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _fprog(program: bytes) -> _SockFprog:
    return _SockFprog(len(program) // 8, program)  # holds a reference to `program`


if __name__ == "__main__":
    main()
