"""Adversarial tests of the local sandbox: `rstar_pipeline.sandbox` (base.py, pool.py, local.py, _worker.py).

The default isolation is "strict" (this machine runs as root): every worker is init of its own PID
namespace, in an empty network namespace and a private mount namespace with tmpfs on /tmp, /var/tmp,
/dev/shm and /run; every program is forked from it and runs as uid UID_BASE + worker pid, without
capabilities, under no_new_privs, a seccomp filter and rlimits.

Host paths under /tmp (pytest's tmp_path included) are invisible to strict-mode programs, so programs
report through stdout, and host-side files these tests plant live under HOST_BASE (outside every dir
the sandbox covers) and are removed by their fixtures. One module-scoped strict sandbox serves most tests;
tests needing their own configuration, or that kill workers, make their own instance. Hostile programs
that must time out run as one batch, so their 1 s limits overlap on the two workers.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rstar_pipeline.sandbox import (ExecResult, ExecStatus, SandboxConfig, SandboxIsolationError,
                                    make_sandbox)
from rstar_pipeline.sandbox._worker import ARCHES, UID_BASE
from rstar_pipeline.sandbox.local import WORKER, WORKER_ENV, LocalSandbox, worker_settings
from rstar_pipeline.sandbox.pool import Worker

PROJECT = Path(__file__).resolve().parents[1]
# host files the tests plant must sit where the sandbox does not cover them with its own tmpfs (the
# checkout itself may live under /tmp, as on CI)
HOST_BASE = next(p for p in (Path("/var/lib"), Path("/opt"), PROJECT) if p.is_dir() and not str(p).startswith("/tmp"))
NON_OK = {ExecStatus.ERROR, ExecStatus.TIMEOUT, ExecStatus.MEMORY, ExecStatus.KILLED}
TRUNCATION_MARKER = "[output truncated at"
_libc = ctypes.CDLL(None, use_errno=True)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sandbox():
    """The shared strict sandbox: two workers, 2 s limit."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=2)) as sb:
        yield sb


@pytest.fixture(scope="module")
def single():
    """A strict sandbox with one worker: consecutive programs surely run on the same worker."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
        yield sb


@pytest.fixture(scope="module")
def limited():
    """A strict sandbox with a small address-space limit and a small output cap."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1, memory_mb=512, max_output_bytes=1000)) as sb:
        yield sb


@pytest.fixture(scope="module")
def sentinel():
    """A `sleep 30` process on the host that no sandboxed program may kill."""
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def canary():
    """A root-owned file (0644) in a root-owned directory (0755) outside the dirs the sandbox covers."""
    folder = HOST_BASE / f"rstar-sandbox-canary-{uuid.uuid4().hex[:8]}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    path = folder / "file"
    path.write_text("canary\n")
    os.chmod(path, 0o644)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def host_dir():
    """A fresh directory on the host outside the dirs the sandbox covers, removed afterwards."""
    folder = HOST_BASE / f"rstar-sandbox-test-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- host-side helpers


def _host_processes() -> list[tuple[int, int, str, bytes]]:
    """(pid, real uid, state, cmdline) of every process this host can see."""
    procs = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            procs.append((int(entry), int(fields["Uid"].split()[0]), fields["State"].split()[0], cmdline))
        except (OSError, KeyError, IndexError, ValueError):
            continue  # gone meanwhile
    return procs


def _live(pred) -> list[tuple[int, int, str, bytes]]:
    return [p for p in _host_processes() if p[2] not in ("Z", "X") and pred(p)]


def _survivors(pred, within: float = 1.0) -> list[tuple[int, int, str, bytes]]:
    """Live host processes matching `pred`, waiting up to `within` seconds for them to go away."""
    deadline = time.monotonic() + within
    while True:
        found = _live(pred)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _kill_pids(procs) -> None:
    """Kill processes this test caused to exist (by pid), so a failing test leaves nothing behind."""
    for pid, *_ in procs:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _sandbox_uids(sb) -> set[int]:
    return {UID_BASE + w.proc.pid for w in sb.workers}


def _of_uids(uids):
    return lambda p: p[1] in uids


def _sleep_marker() -> str:
    """A unique `sleep` argument, recognisable in the host's process table."""
    return f"61.5{random.randrange(10**6):06d}"


def _is_sleep(marker: str):
    return lambda p: p[3] == b"sleep\0" + marker.encode() + b"\0"


def _host_shm_id(key: int) -> int:
    return _libc.shmget(ctypes.c_int(key), 0, 0)


# ---------------------------------------------------------------- factory and configuration


def test_make_sandbox_returns_local_sandbox():
    """make_sandbox with the local backend returns a LocalSandbox usable as a context manager."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
        assert isinstance(sb, LocalSandbox)
        assert sb.execute("print('hi')").stdout == "hi\n"


@pytest.mark.parametrize("kwargs", [
    {"backend": "nope"},
    {"isolation": "bogus"},
    {"isolation": ""},
    {"timeout_s": 0},
    {"timeout_s": -1},
    {"memory_mb": 0},
    {"workers": -1},
])
def test_config_validation(kwargs):
    """Invalid SandboxConfig values (unknown isolation included) raise ValueError."""
    with pytest.raises(ValueError):
        SandboxConfig(**kwargs)


def test_default_isolation_is_strict():
    """A default SandboxConfig asks for strict isolation."""
    assert SandboxConfig().isolation == "strict"


def test_close_is_idempotent():
    """close() may be called twice, and a closed sandbox starts fresh workers on the next run."""
    sb = make_sandbox(SandboxConfig(timeout_s=2, workers=1))
    try:
        assert sb.execute("print(1)").ok
        sb.close()
        sb.close()
        assert sb.execute("print(2)").stdout == "2\n"
    finally:
        sb.close()


# ---------------------------------------------------------------- 1. hostile control flow


HOSTILE = {
    "busy-loop": "while True: pass",
    "sleep": "import time; time.sleep(100)",
    "catch-everything": ("while True:\n"
                         "    try:\n"
                         "        while True:\n"
                         "            pass\n"
                         "    except BaseException:\n"
                         "        pass\n"),
    "ignore-signals": ("import signal\n"
                       "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU,\n"
                       "          signal.SIGUSR1, signal.SIGQUIT):\n"
                       "    signal.signal(s, signal.SIG_IGN)\n"
                       "while True:\n"
                       "    pass\n"),
    "itimer-swallowed": ("import signal, time\n"
                         "signal.signal(signal.SIGALRM, lambda *a: None)\n"
                         "signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)\n"
                         "while True:\n"
                         "    try:\n"
                         "        time.sleep(100)\n"
                         "    except BaseException:\n"
                         "        pass\n"),
    "alarm-rearming": ("import signal\nsignal.signal(signal.SIGALRM, lambda *a: signal.alarm(1))\nsignal.alarm(1)\n"
                       "while True:\n    pass\n"),
    "sleep-in-finally": "import time\ntry:\n    while True: pass\nfinally:\n    time.sleep(100)\n",
    "read-own-pipe": "import os\nr, w = os.pipe()\nos.read(r, 1)\n",
}


@pytest.fixture(scope="module")
def hostile_results(sandbox):
    """All HOSTILE programs in one batch with a 1 s limit (they overlap on the two workers)."""
    start = time.monotonic()
    results = sandbox.run(list(HOSTILE.values()), timeout_s=1)
    return dict(zip(HOSTILE, results)), time.monotonic() - start


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_times_out(hostile_results, name):
    """A program that never ends on its own (however it fights signals) is a timeout within 15 s."""
    results, batch_elapsed = hostile_results
    result = results[name]
    assert result.status is ExecStatus.TIMEOUT, result
    assert result.error_message == "TimeoutError: the program exceeded its time limit"
    assert result.duration_s < 15
    assert batch_elapsed < 60  # eight 1 s limits on two workers


def test_single_timeout_call_returns_within_15s(sandbox):
    """One call with a busy loop and a 1 s limit returns (timeout) within 15 s of wall clock."""
    start = time.monotonic()
    result = sandbox.execute("while True: pass  # single", timeout_s=1)
    assert result.status is ExecStatus.TIMEOUT
    assert time.monotonic() - start < 15


def test_output_before_timeout_is_kept(sandbox):
    """Output flushed before a timeout is kept in the result."""
    result = sandbox.execute("import time\nprint('started', flush=True)\ntime.sleep(100)\n", timeout_s=1)
    assert result.status is ExecStatus.TIMEOUT
    assert result.stdout == "started\n"


def test_sandbox_works_after_hostile_batch(sandbox, hostile_results):
    """After the hostile batch both workers still run programs."""
    results = sandbox.run([f"print({i} * 2)" for i in range(4)])
    assert [r.stdout for r in results] == ["0\n", "2\n", "4\n", "6\n"]


# ---------------------------------------------------------------- 2. fork and thread bombs


BOMBS = {
    "fork-bomb": ("import os\n"
                  "while True:\n"
                  "    try:\n"
                  "        os.fork()\n"
                  "    except BaseException:\n"
                  "        pass\n"),
    "thread-bomb-catching": ("import threading, time\n"
                             "while True:\n"
                             "    try:\n"
                             "        threading.Thread(target=time.sleep, args=(100,)).start()\n"
                             "    except BaseException:\n"
                             "        pass\n"),
    "thread-bomb": ("import threading, time\n"
                    "while True:\n"
                    "    threading.Thread(target=time.sleep, args=(100,)).start()\n"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_returns_and_leaves_no_process(sandbox, name):
    """A fork or thread bomb returns (timeout or error), leaves no process of its uid, and the pool works."""
    uid = int(sandbox.execute("import os; print(os.getuid())").stdout)
    uids = _sandbox_uids(sandbox)
    assert uid in uids
    start = time.monotonic()
    result = sandbox.execute(BOMBS[name], timeout_s=1)
    assert time.monotonic() - start < 15
    assert result.status in (ExecStatus.TIMEOUT, ExecStatus.ERROR), result
    survivors = _survivors(_of_uids(uids))
    _kill_pids(survivors)
    assert survivors == []
    assert sandbox.execute(f"print('after {name}')").stdout == f"after {name}\n"


# ---------------------------------------------------------------- 3. memory bombs


def test_big_allocation_is_memory(limited):
    """Allocating 8 GiB at once under a 512 MiB limit gives status memory; the sandbox keeps working."""
    result = limited.execute("x = bytearray(8 * 1024**3)")
    assert result.status is ExecStatus.MEMORY
    assert "MemoryError" in result.error_message
    assert limited.execute("print('after')").stdout == "after\n"


def test_big_allocation_is_memory_at_default_limit(sandbox):
    """Allocating 8 GiB under the default 1 GiB limit gives status memory."""
    result = sandbox.execute("x = bytearray(8 * 1024**3)")
    assert result.status is ExecStatus.MEMORY


def test_growing_list_is_never_ok(limited):
    """A list growing forever ends as memory, killed, error or timeout, never ok; the sandbox keeps working."""
    result = limited.execute("x = []\nwhile True:\n    x.append(' ' * 10**6)\n")
    assert result.status in NON_OK
    assert limited.execute("print('after list')").stdout == "after list\n"


def test_memory_bomb_across_forked_children(limited):
    """Several forked children each allocating forever: the call returns and no process survives."""
    code = ("import os\n"
            "for _ in range(5):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            break\n"
            "    except OSError:\n"
            "        pass\n"
            "x = []\n"
            "while True:\n"
            "    try:\n"
            "        x.append(bytearray(10**7))\n"
            "    except MemoryError:\n"
            "        pass\n")
    uids = _sandbox_uids(limited)
    start = time.monotonic()
    result = limited.execute(code, timeout_s=1)
    assert time.monotonic() - start < 15
    assert result.status in NON_OK
    survivors = _survivors(_of_uids(uids))
    _kill_pids(survivors)
    assert survivors == []
    assert limited.execute("print('after fork memory')").stdout == "after fork memory\n"


# ---------------------------------------------------------------- 4. huge output


def test_50mb_stdout_is_capped(sandbox):
    """Printing 50 MB is ok with stdout capped around the marker, keeping the start and the end."""
    cap = sandbox.config.max_output_bytes
    result = sandbox.execute("import sys\nsys.stdout.write('START')\nchunk = 'x' * 2**20\n"
                             "for _ in range(50):\n    sys.stdout.write(chunk)\nprint('END')\n")
    assert result.status is ExecStatus.OK
    assert len(result.stdout) < 2 * cap + 200
    assert TRUNCATION_MARKER in result.stdout
    assert result.stdout.startswith("START")
    assert result.stdout.endswith("END\n")


def test_single_50mb_line_is_capped(sandbox):
    """One 50 MB print is ok with stdout capped and marked."""
    cap = sandbox.config.max_output_bytes
    result = sandbox.execute("print('y' * 50_000_000)")
    assert result.status is ExecStatus.OK
    assert len(result.stdout) < 2 * cap + 200
    assert f"[output truncated at {cap} bytes: {50_000_001 - cap} bytes cut here]" in result.stdout


def test_50mb_stderr_is_capped_and_error_line_survives(sandbox):
    """A 50 MB stderr flood before an exception is capped and error_message is still the exception line."""
    cap = sandbox.config.max_output_bytes
    result = sandbox.execute("import sys\nchunk = 'e' * 2**20\nfor _ in range(50):\n    sys.stderr.write(chunk)\n"
                             "raise ValueError('the real error')\n")
    assert result.status is ExecStatus.ERROR
    assert len(result.stderr) < 2 * cap + 200
    assert TRUNCATION_MARKER in result.stderr
    assert result.error_message == "ValueError: the real error"


def test_large_stdout_is_truncated_with_exact_marker(limited):
    """stdout beyond max_output_bytes keeps its first and last 500 bytes around the exact marker."""
    result = limited.execute("print('a' * 2500 + 'z' * 2500)")
    assert result.status is ExecStatus.OK
    head, marker, tail = result.stdout.split("\n", 2)
    assert head == "a" * 500 and tail == "z" * 499 + "\n"
    assert marker == "[output truncated at 1000 bytes: 4001 bytes cut here]"


def test_output_at_the_limit_is_not_truncated(limited):
    """stdout of exactly max_output_bytes is kept whole, without a marker."""
    result = limited.execute("import sys; sys.stdout.write('b' * 1000)")
    assert result.stdout == "b" * 1000


def test_error_message_survives_stderr_truncation(limited):
    """After a lot of stderr, error_message is still the exception line."""
    result = limited.execute("import sys\nsys.stderr.write('x' * 2000 + '\\n')\n1 / 0\n")
    assert result.status is ExecStatus.ERROR
    assert TRUNCATION_MARKER in result.stderr
    assert result.error_message == "ZeroDivisionError: division by zero"


def test_invalid_utf8_output_is_replaced(sandbox):
    """Bytes that are not UTF-8 come back as replacement characters, not as a crash."""
    result = sandbox.execute("import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')")
    assert result.status is ExecStatus.OK
    assert result.stdout == "ok \ufffd\ufffd end\n"


# ---------------------------------------------------------------- 5. host filesystem


@pytest.mark.parametrize("path, mode", [
    (str(HOST_BASE / "should_not_exist"), "w"),
    ("/etc/passwd", "a"),
    ("/root/x", "w"),
    ("/usr/bin/rstar_sandbox_probe", "w"),
    (str(PROJECT / "rstar_pipeline" / "sandbox" / "base.py"), "a"),
])
def test_host_path_outside_scratch_is_not_writable(sandbox, path, mode):
    """Writing a host path outside the scratch dir fails (denied, or hidden when under a covered dir)
    and changes nothing on the host."""
    before = Path(path).read_bytes() if os.path.exists(path) else None
    result = sandbox.execute(f"open({path!r}, {mode!r}).write('sandbox was here\\n')")
    assert result.status is ExecStatus.ERROR
    assert result.error_message.startswith(("PermissionError", "FileNotFoundError")), result.error_message
    after = Path(path).read_bytes() if os.path.exists(path) else None
    assert after == before


def test_root_owned_host_file_cannot_be_deleted_or_changed(sandbox, canary):
    """A root-owned 0644 file in a 0755 directory survives delete, rename, write, chmod and truncate attempts."""
    code = (f"import os\npath = {str(canary)!r}\n"
            "attempts = {\n"
            "    'remove': lambda: os.remove(path),\n"
            "    'rename': lambda: os.rename(path, path + '.moved'),\n"
            "    'write': lambda: open(path, 'w').write('pwned'),\n"
            "    'append': lambda: open(path, 'a').write('pwned'),\n"
            "    'chmod': lambda: os.chmod(path, 0o777),\n"
            "    'truncate': lambda: os.truncate(path, 0),\n"
            "    'rmdir': lambda: os.rmdir(os.path.dirname(path)),\n"
            "    'create': lambda: open(os.path.join(os.path.dirname(path), 'new'), 'w'),\n"
            "}\n"
            "for name, attempt in attempts.items():\n"
            "    try:\n"
            "        attempt()\n"
            "        print(name, 'SUCCEEDED')\n"
            "    except Exception as e:\n"
            "        print(name, type(e).__name__)\n")
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK
    outcomes = dict(line.split() for line in result.stdout.splitlines())
    assert outcomes == {name: "PermissionError" for name in
                        ("remove", "rename", "write", "append", "chmod", "truncate", "rmdir", "create")}
    assert canary.read_text() == "canary\n"
    assert stat.S_IMODE(canary.stat().st_mode) == 0o644
    assert sorted(p.name for p in canary.parent.iterdir()) == ["file"]


def test_sandbox_tmp_is_not_host_tmp(sandbox):
    """Files a program creates in /tmp, /var/tmp and /dev/shm do not appear on the host."""
    name = f"rstar-sandbox-probe-{uuid.uuid4().hex}"
    dirs = ["/tmp", "/var/tmp", "/dev/shm"]
    code = (f"import os\nfor d in {dirs!r}:\n"
            f"    open(os.path.join(d, {name!r}), 'w').write('x')\n"
            f"    print(os.path.exists(os.path.join(d, {name!r})))\n")
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK
    assert result.stdout == "True\nTrue\nTrue\n"  # the program did write them, in its own tmpfs
    for d in dirs:
        assert not os.path.exists(os.path.join(d, name))


def test_scratch_dir_is_fresh_per_program(single):
    """Each program gets a fresh, empty scratch dir as cwd and HOME (strict: its own tmpfs /tmp)."""
    first = single.execute("import os\nopen('note.txt', 'w').write('hi')\nprint(os.getcwd(), os.listdir('.'))\n")
    assert first.status is ExecStatus.OK and first.stdout.endswith("['note.txt']\n")
    second = single.execute("import os\nprint(os.path.exists('note.txt'), os.listdir('.'), "
                            "os.getcwd() == os.environ['HOME'])\n")
    assert (second.status, second.stdout) == (ExecStatus.OK, "False [] True\n")


def test_scratch_dir_is_writable(sandbox):
    """A program can write and read back a file in its scratch dir (and in TMPDIR)."""
    code = ("import os, tempfile\n"
            "with open('answer.txt', 'w') as f:\n    f.write('42')\n"
            "print(open('answer.txt').read())\n"
            "with tempfile.NamedTemporaryFile('w', delete=False) as f:\n    f.write('7')\n"
            "print(open(f.name).read(), f.name.startswith(os.getcwd()))\n")
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK, result.stderr
    assert result.stdout == "42\n7 True\n"


# ---------------------------------------------------------------- 6. secrets


def test_environment_secret_does_not_leak(monkeypatch):
    """A variable of the test's environment is invisible via os.environ, /proc/self/environ and /proc/1/environ."""
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("RSTAR_TEST_SECRET", secret)
    code = ("import os\n"
            "print(sorted(os.environ))\n"
            "print(os.environ.get('RSTAR_TEST_SECRET'))\n"
            "for path in ('/proc/self/environ', '/proc/1/environ'):\n"
            "    try:\n"
            "        print(path, open(path, 'rb').read())\n"
            "    except OSError as e:\n"
            "        print(path, type(e).__name__)\n")
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
        result = sb.execute(code)
    assert result.status is ExecStatus.OK
    assert secret not in result.stdout and "RSTAR_TEST_SECRET" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == "['HOME', 'LANG', 'PATH', 'TMPDIR']"
    assert lines[1] == "None"


def test_etc_shadow_is_unreadable(sandbox):
    """/etc/shadow cannot be read."""
    result = sandbox.execute("print(open('/etc/shadow').read())")
    assert result.status is ExecStatus.ERROR
    assert result.error_message.startswith("PermissionError")
    assert result.stdout == ""


def test_proc_shows_only_the_program(sandbox):
    """/proc lists only the worker's namespace: its init (the worker, pid 1) and the program."""
    result = sandbox.execute("import os; print(sorted(int(e) for e in os.listdir('/proc') if e.isdigit()), "
                             "os.getpid())")
    assert result.status is ExecStatus.OK
    pids, own = result.stdout.rsplit(" ", 1)
    assert json.loads(pids) == [1, int(own)]


def test_proc_shows_only_own_children(sandbox):
    """With a child process running, /proc lists only small pids of the program's own namespace."""
    code = ("import os, subprocess\n"
            "p = subprocess.Popen(['sleep', '5'])\n"
            "pids = sorted(int(e) for e in os.listdir('/proc') if e.isdigit())\n"
            "print(os.getpid(), p.pid, pids)\n"
            "p.kill(); p.wait()\n")
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK, result.stderr
    own, child, pids = result.stdout.split(" ", 2)
    assert sorted(json.loads(pids)) == [1, int(own), int(child)]


def test_environ_of_visible_pids_reveals_nothing(sandbox):
    """Reading /proc/<pid>/environ for every pid the program sees reveals no host environment."""
    code = ("import os\n"
            "for e in sorted(os.listdir('/proc')):\n"
            "    if e.isdigit():\n"
            "        try:\n"
            "            print(e, open(f'/proc/{e}/environ', 'rb').read())\n"
            "        except OSError as err:\n"
            "            print(e, type(err).__name__)\n")
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines.pop("1") == "PermissionError"  # the worker, a root process: its environ stays closed
    assert len(lines) == 1  # the program itself
    for name in set(os.environ) | set(WORKER_ENV):
        if name not in ("HOME", "LANG", "PATH", "TMPDIR"):
            assert f"{name}=" not in result.stdout, name


def test_no_inherited_file_descriptors(sandbox):
    """A program inherits only stdin, stdout, stderr and the status pipe (fd 3)."""
    result = sandbox.execute("import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))")
    assert result.status is ExecStatus.OK
    assert json.loads(result.stdout)[:4] == [0, 1, 2, 3]
    assert len(json.loads(result.stdout)) == 5  # fd 4 is listdir's own descriptor of /proc/self/fd


def test_stdin_is_empty(sandbox):
    """A program reading stdin gets end-of-file at once."""
    result = sandbox.execute("import sys; print(repr(sys.stdin.read()))")
    assert result.status is ExecStatus.OK
    assert result.stdout == "''\n"


# ---------------------------------------------------------------- 7. network


@pytest.fixture
def listeners(host_dir):
    """Real listeners on the host: TCP and UDP on 127.0.0.1, a 0777 unix socket outside /tmp, an abstract socket."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    os.chmod(host_dir, 0o777)
    unix_path = str(host_dir / "s.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix.listen(16)
    abstract_name = f"\0rstar-sandbox-test-{uuid.uuid4().hex}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(abstract_name)
    abstract.listen(16)
    for s in (tcp, udp, unix, abstract):
        s.setblocking(False)
    yield {"tcp": (tcp, tcp.getsockname()[1]), "udp": (udp, udp.getsockname()[1]),
           "unix": (unix, unix_path), "abstract": (abstract, abstract_name)}
    for s in (tcp, udp, unix, abstract):
        s.close()


def _network_program(kind: str, target) -> str:
    if kind == "tcp":
        return (f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                f"s.settimeout(1)\ns.connect(('127.0.0.1', {target}))\ns.sendall(b'leak')\n")
    if kind == "udp":
        return (f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"s.sendto(b'leak', ('127.0.0.1', {target}))\n")
    return (f"import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"s.connect({target!r})\ns.sendall(b'leak')\n")


@pytest.mark.parametrize("kind", ["tcp", "udp", "unix", "abstract"])
def test_host_listener_is_unreachable(sandbox, listeners, kind):
    """Connecting or sending to a real host listener fails with PermissionError/OSError and nothing arrives."""
    sock, target = listeners[kind]
    result = sandbox.execute(_network_program(kind, target))
    assert result.status is ExecStatus.ERROR
    assert result.error_message.startswith(("PermissionError", "OSError", "ConnectionRefusedError",
                                            "FileNotFoundError")), result.error_message
    with pytest.raises(BlockingIOError):
        if kind == "udp":
            sock.recvfrom(64)
        else:
            sock.accept()


@pytest.mark.parametrize("family, kind", [
    ("AF_INET", "SOCK_STREAM"), ("AF_INET", "SOCK_DGRAM"), ("AF_INET6", "SOCK_STREAM"),
    ("AF_UNIX", "SOCK_STREAM"), ("AF_UNIX", "SOCK_DGRAM"), ("AF_NETLINK", "SOCK_RAW"),
    ("AF_PACKET", "SOCK_RAW"), ("AF_INET", "SOCK_RAW"),
])
def test_socket_is_denied(sandbox, family, kind):
    """socket.socket(...) of any family raises PermissionError (seccomp denies socket())."""
    result = sandbox.execute(f"import socket\nsocket.socket(socket.{family}, socket.{kind})\n")
    assert result.status is ExecStatus.ERROR
    assert result.error_message == "PermissionError: [Errno 1] Operation not permitted"


def test_socketpair_only_connects_the_program_to_itself(sandbox):
    """socketpair() (not a socket() call, so not denied) yields only a pair private to the program."""
    result = sandbox.execute("import socket\na, b = socket.socketpair()\na.sendall(b'ping')\nprint(b.recv(4))\n")
    assert result.status is ExecStatus.OK
    assert result.stdout == "b'ping'\n"


def test_program_sees_no_host_listener(sandbox, listeners):
    """The program's /proc/net/tcp (its empty network namespace) does not list the host's listener."""
    port = listeners["tcp"][1]
    result = sandbox.execute("print(open('/proc/net/tcp').read())")
    assert result.status is ExecStatus.OK
    assert f":{port:04X} " not in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1  # the header only


# ---------------------------------------------------------------- 8. killing the parent or its group


KILLERS = {
    "kill-ppid": "os.kill(os.getppid(), 9)",
    "killpg-0": "os.killpg(0, 9)",
    "kill-minus-1": "os.kill(-1, 9)",
    "kill-pid-1": "os.kill(1, 9)",
    "kill-sentinel": "os.kill({sentinel}, 9)",
    "kill-workers": "[os.kill(p, 9) for p in {workers}]",
    "killpg-workers": "[os.killpg(p, 9) for p in {workers}]",
}


@pytest.mark.parametrize("name", list(KILLERS))
def test_killing_parent_or_host_processes_fails(sandbox, sentinel, name):
    """Signalling the parent, the group, everyone or known host pids harms neither the pool nor the host."""
    workers_before = [w.proc.pid for w in sandbox.workers]
    statement = KILLERS[name].format(sentinel=sentinel.pid, workers=workers_before)
    result = sandbox.execute(f"import os\ntry:\n    {statement}\nexcept OSError as e:\n"
                             f"    print(type(e).__name__)\nprint('survived')\n")
    assert result.status in (ExecStatus.OK, ExecStatus.ERROR, ExecStatus.KILLED), result
    assert sentinel.poll() is None  # the host's process is alive
    assert [w.proc.pid for w in sandbox.workers] == workers_before  # no worker was replaced
    assert all(w.proc.poll() is None for w in sandbox.workers)
    assert sandbox.execute(f"print('next after {name}')").stdout == f"next after {name}\n"


# ---------------------------------------------------------------- 9. processes left behind


def _leftover_program(how: str, marker: str) -> str:
    wait_running = ("import os, time\n"
                    "deadline = time.time() + 5\n"
                    "while time.time() < deadline:\n"
                    "    if any(open(f'/proc/{e}/cmdline', 'rb').read() == b'sleep\\0' + MARKER + b'\\0'\n"
                    "           for e in os.listdir('/proc') if e.isdigit()):\n"
                    "        print('running')\n"
                    "        break\n"
                    "    time.sleep(0.01)\n")
    start = {
        "popen": "import subprocess\nsubprocess.Popen(['sleep', MARKER.decode()])\n",
        "popen-new-session": "import subprocess\nsubprocess.Popen(['sleep', MARKER.decode()], start_new_session=True)\n",
        "double-fork-setsid": ("import os\n"
                               "if os.fork() == 0:\n"
                               "    os.setsid()\n"
                               "    if os.fork() == 0:\n"
                               "        os.execvp('sleep', ['sleep', MARKER.decode()])\n"
                               "    os._exit(0)\n"
                               "os.wait()\n"),
        "shell-background": ("import subprocess\n"
                             "subprocess.run('nohup sleep ' + MARKER.decode() + ' >/dev/null 2>&1 &', shell=True)\n"),
    }[how]
    return f"MARKER = {marker.encode()!r}\n" + start + wait_running


@pytest.mark.parametrize("how", ["popen", "popen-new-session", "double-fork-setsid", "shell-background"])
def test_background_process_does_not_outlive_the_program(sandbox, how):
    """A background `sleep` started by a program (however detached) is gone once the call returns."""
    marker = _sleep_marker()
    result = sandbox.execute(_leftover_program(how, marker))
    survivors = _survivors(_is_sleep(marker))
    _kill_pids(survivors)
    assert result.status is ExecStatus.OK, result.stderr
    assert result.stdout == "running\n"  # the background process really started
    assert survivors == []


def test_program_does_not_outlive_its_killed_worker():
    """When a worker is SIGKILLed mid-program the result is killed, the pool recovers and the program dies too."""
    marker = _sleep_marker()
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1, cache_size=0)) as sb:
        assert sb.execute("print(1)").ok
        worker = sb.workers[0]
        uid = UID_BASE + worker.proc.pid
        code = f"import subprocess, time\nsubprocess.Popen(['sleep', {marker!r}])\ntime.sleep(60)\n"
        survivors = []
        try:
            with ThreadPoolExecutor(1) as ex:
                future = ex.submit(sb.execute, code, 10)
                deadline = time.monotonic() + 10
                while not _live(_is_sleep(marker)) and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert _live(_is_sleep(marker)), "the program did not start"
                os.kill(worker.proc.pid, signal.SIGKILL)
                result = future.result(timeout=30)
            assert result.status is ExecStatus.KILLED
            assert result.exit_code is None
            assert "worker died" in result.error_message
            assert sb.workers[0] is not worker
            assert sb.execute("print(2)").stdout == "2\n"
            survivors = _survivors(_of_uids({uid}))
            assert survivors == [], f"left behind after the worker died: {[p[:3] for p in survivors]}"
        finally:
            _kill_pids(_live(_of_uids({uid})))


def test_stopped_worker_is_replaced():
    """A worker that stops answering (SIGSTOP) is replaced after timeout + grace; the program's result is killed."""
    with make_sandbox(SandboxConfig(timeout_s=1, workers=1, cache_size=0)) as sb:
        assert sb.execute("print(1)").ok
        worker = sb.workers[0]
        uid = UID_BASE + worker.proc.pid
        # strict mode: the process the pool started waits on the real worker, init of its namespace
        inner = int(open(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children").read().split()[0])
        try:
            with ThreadPoolExecutor(1) as ex:
                future = ex.submit(sb.execute, "import time; time.sleep(60)", 1)
                time.sleep(0.3)
                os.kill(inner, signal.SIGSTOP)
                start = time.monotonic()
                result = future.result(timeout=60)
                assert time.monotonic() - start < 30
            assert result.status is ExecStatus.KILLED
            assert "stopped answering" in result.error_message
            assert worker.proc.poll() is not None  # the stopped worker was killed
            assert sb.workers[0] is not worker
            assert sb.execute("print(2)").stdout == "2\n"
        finally:
            _kill_pids(_live(_of_uids({uid})))  # see test_program_does_not_outlive_its_killed_worker


# ---------------------------------------------------------------- 10. state leaks between calls


LEAKS = {
    "globals": ("x = 41", "print('x' in globals())", "False\n"),
    "builtins-print": ("import builtins; builtins.print = None", "print('fine')", "fine\n"),
    "builtins-int": ("import builtins; builtins.int = str", "print(int('3') + 1)", "4\n"),
    "sys-modules": ("import sys; sys.modules['math'] = None", "import math; print(math.sqrt(16))", "4.0\n"),
    "module-attribute": ("import math; math.rstar_marker = 1", "import math; print(hasattr(math, 'rstar_marker'))",
                         "False\n"),
    "sympy-pi": ("import sympy; sympy.pi = 3", "import sympy; print(sympy.pi, sympy.pi.evalf(5))", "pi 3.1416\n"),
    "scratch-file": ("open('note.txt', 'w').write('x')", "import os; print(os.listdir('.'))", "[]\n"),
    "environment": ("import os; os.environ['LEAK'] = '1'; os.putenv('LEAK2', '1')",
                    "import os; print(os.environ.get('LEAK'), os.environ.get('LEAK2'))", "None None\n"),
    "cwd": ("import os; os.chdir('/')", "import os; print(os.getcwd() == os.environ['HOME'] != '/')", "True\n"),
    "threads": ("import threading, time; threading.Thread(target=time.sleep, args=(30,)).start()",
                "import threading; print(threading.active_count())", "1\n"),
    "recursion-limit": ("import sys; sys.setrecursionlimit(50)", "import sys; print(sys.getrecursionlimit() > 50)",
                        "True\n"),
    "random-seed": ("import random; random.seed(1)",
                    "import random; print(random.random() != random.Random(1).random())", "True\n"),
}


@pytest.mark.parametrize("name", list(LEAKS))
def test_state_does_not_leak_to_the_next_program(single, name):
    """What one program changes (globals, builtins, modules, files, env, cwd, threads) is unseen by the next."""
    first, second, expected = LEAKS[name]
    assert single.execute(first).status is ExecStatus.OK
    result = single.execute(second)
    assert result.status is ExecStatus.OK, result.stderr
    assert result.stdout == expected


@pytest.mark.parametrize("folder", ["/tmp", "/var/tmp", "/dev/shm"])
def test_tmp_files_do_not_leak_to_the_next_program(single, folder):
    """A file one program leaves in /tmp, /var/tmp or /dev/shm is not visible to the next program."""
    path = f"{folder}/rstar-leak-{uuid.uuid4().hex}"
    first = single.execute(f"open({path!r}, 'w').write('secret from an earlier program')")
    assert first.status is ExecStatus.OK
    second = single.execute(f"import os; print(os.path.exists({path!r}))")
    single.execute(f"import os\ntry:\n    os.remove({path!r})\nexcept OSError:\n    pass\n")  # tidy up
    assert second.stdout == "False\n"


def test_filled_tmp_does_not_break_the_next_program():
    """A program that fills /tmp does not leave the next program unable to write its scratch files."""
    fill = ("n = 0\n"
            "try:\n"
            "    for i in range(1000):\n"
            "        with open(f'/tmp/fill{i}', 'wb') as f:\n"
            "            for _ in range(8):\n"
            "                f.write(b'x' * 2**20)\n"
            "                n += 1\n"
            "except OSError as e:\n"
            "    print(e.errno)\n")
    with make_sandbox(SandboxConfig(timeout_s=5, workers=1, tmpfs_mb=32)) as sb:
        filled = sb.execute(fill)
        assert filled.stdout == "28\n"  # ENOSPC: the worker's 32 MiB tmpfs is full
        result = sb.execute("with open('answer.txt', 'w') as f:\n    f.write('42')\nprint(open('answer.txt').read())\n")
    assert result.status is ExecStatus.OK, result.error_message
    assert result.stdout == "42\n"


def test_sysv_shared_memory_does_not_outlive_the_program(single):
    """A SysV shared-memory segment a program creates is gone afterwards, for the next program and the host."""
    key = random.randrange(0x5A000000, 0x5AFFFFFF)
    create = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              f"print(libc.shmget({key}, 4096, 0o1666) >= 0)\n")  # IPC_CREAT | 0666
    probe = f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.shmget({key}, 0, 0) >= 0)\n"
    try:
        first = single.execute(create)
        assert first.status is ExecStatus.OK
        second = single.execute(probe)
        on_host = _host_shm_id(key)
        assert second.stdout == "False\n", "the next program sees the earlier program's SysV segment"
        assert on_host == -1, "the program's SysV segment persists on the host"
    finally:
        shmid = _host_shm_id(key)
        if shmid >= 0:
            _libc.shmctl(shmid, 0, None)  # IPC_RMID


# ---------------------------------------------------------------- 11. concurrency


def test_two_sandboxes_in_two_threads_do_not_cross_talk():
    """Two sandboxes used at once from two threads, 50 programs each: every result is its own program's."""
    def batch(tag: str) -> tuple[list[str], list[ExecResult]]:
        tokens = [f"{tag}-{i}-{uuid.uuid4().hex}" for i in range(50)]
        with make_sandbox(SandboxConfig(timeout_s=5, workers=2)) as sb:
            return tokens, sb.run([f"import time\ntime.sleep({(i % 4) * 0.005})\nprint({t!r})"
                                   for i, t in enumerate(tokens)])

    with ThreadPoolExecutor(2) as ex:
        outcomes = list(ex.map(batch, ["A", "B"]))
    for tokens, results in outcomes:
        assert [r.status for r in results] == [ExecStatus.OK] * 50
        assert [r.stdout for r in results] == [f"{t}\n" for t in tokens]


def test_batch_of_100_keeps_input_order(sandbox):
    """100 programs with varied run times on two workers come back in input order."""
    programs = [f"import time\ntime.sleep({(i * 7 % 5) * 0.004})\nprint({i}, {i}**2)" for i in range(100)]
    results = sandbox.run(programs)
    assert len(results) == 100
    assert all(isinstance(r, ExecResult) for r in results)
    assert [r.stdout for r in results] == [f"{i} {i**2}\n" for i in range(100)]


def test_batch_with_mixed_outcomes_keeps_order(sandbox):
    """A batch mixing ok, error, timeout and crash keeps each result at its program's index."""
    programs = ["print('a')", "1/0", "import time; time.sleep(100)  # mixed", "print('d')",
                "import sys; sys.exit(2)", "import ctypes; ctypes.string_at(0)  # mixed"]
    results = sandbox.run(programs, timeout_s=1)
    assert [r.status for r in results] == [ExecStatus.OK, ExecStatus.ERROR, ExecStatus.TIMEOUT,
                                           ExecStatus.OK, ExecStatus.ERROR, ExecStatus.KILLED]
    assert results[0].stdout == "a\n"
    assert results[3].stdout == "d\n"
    assert results[4].exit_code == 2


def test_empty_batch(sandbox):
    """An empty batch returns an empty list."""
    assert sandbox.run([]) == []


# ---------------------------------------------------------------- 12. crashes


CRASHES = {
    "segfault": ("import ctypes; ctypes.string_at(0)", {ExecStatus.KILLED}, -11),
    "c-stack-overflow": ("import sys, json\nsys.setrecursionlimit(10**6)\nx = []\nfor _ in range(10**6):\n"
                         "    x = [x]\njson.dumps(x)\n", NON_OK, None),
    "python-recursion": ("import sys; sys.setrecursionlimit(10**6)\nf = lambda n: f(n+1)\nf(0)", NON_OK, None),
    "os-exit-7": ("import os; os._exit(7)", {ExecStatus.ERROR}, 7),
    "os-abort": ("import os; os.abort()", NON_OK, None),
    "self-sigsegv": ("import ctypes\nctypes.memset(0, 1, 1)", {ExecStatus.KILLED}, -11),
}


@pytest.mark.parametrize("name", list(CRASHES))
def test_crash_is_not_ok_and_pool_keeps_working(sandbox, name):
    """A crashing program gets a non-ok status (exact where defined) and the next program runs."""
    code, statuses, exit_code = CRASHES[name]
    result = sandbox.execute(code, timeout_s=1)
    assert result.status in statuses, result
    if exit_code is not None:
        assert result.exit_code == exit_code
    assert result.error_message
    after = sandbox.execute(f"print('alive after {name}')")
    assert after.status is ExecStatus.OK
    assert after.stdout == f"alive after {name}\n"


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_program_killing_itself_is_killed(sandbox, sig):
    """A program that sends itself a fatal signal ends there, status killed with exit code -signal."""
    result = sandbox.execute(f"import os, signal\nos.kill(os.getpid(), signal.{sig})\nprint('still running')\n")
    assert result.stdout == ""
    assert result.status is ExecStatus.KILLED
    assert result.exit_code == -getattr(signal, sig)


SELF_TERM = "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nprint('still running')\n"


def _self_term_in_fresh_sandbox() -> ExecResult:
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
        return sb.execute(SELF_TERM)


@pytest.mark.parametrize("how", ["ignored", "blocked"])
def test_programs_do_not_inherit_the_callers_signal_state(how):
    """An ignored or blocked SIGTERM survives fork and exec: the process that starts the sandbox (nohup,
    a thread that blocks signals) must not change how the program behaves. Regression: in the full test
    suite SIGTERM once did not end a program."""
    if how == "ignored":
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            result = _self_term_in_fresh_sandbox()
        finally:
            signal.signal(signal.SIGTERM, previous)
    else:
        def blocked():  # the mask is per thread: block it only in the thread that starts the workers
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
            return _self_term_in_fresh_sandbox()

        with ThreadPoolExecutor(1) as ex:
            result = ex.submit(blocked).result(timeout=120)
    assert (result.status, result.exit_code, result.stdout) == (ExecStatus.KILLED, -signal.SIGTERM, "")


# ---------------------------------------------------------------- 13. legitimate math, exact output


@pytest.mark.parametrize("code, expected", [
    ("from sympy import symbols, solve\nx = symbols('x')\nprint(solve(x**2 - 2, x))", "[-sqrt(2), sqrt(2)]\n"),
    ("from sympy import symbols, integrate\nx = symbols('x')\nprint(integrate(x**2, (x, 0, 3)))", "9\n"),
    ("from sympy import Rational, sqrt, simplify\nprint(simplify(sqrt(8) / Rational(2, 3)))", "3*sqrt(2)\n"),
    ("from fractions import Fraction\nprint(Fraction(1, 3) + Fraction(1, 6))", "1/2\n"),
    ("import numpy as np\nprint(np.linalg.solve(np.array([[2., 1.], [1., 3.]]), np.array([3., 5.])))", "[0.8 1.4]\n"),
    ("import numpy as np\nprint(np.arange(5).sum())", "10\n"),
    ("print(2**1000)", f"{2**1000}\n"),
    ("import math\nprint(math.factorial(100))", "93326215443944152681699238856266700490715968264381621468592963895217599"
                                                 "99322991560894146397615651828625369792082722375825118521091686400000000"
                                                 "0000000000000000\n"),
    ("print('∑ ü 数学')", "∑ ü 数学\n"),
    ("print(0.1 + 0.2)", "0.30000000000000004\n"),
    ("print(1e-05)", "1e-05\n"),
    ("print(0.00001)", "1e-05\n"),
    ("for i in range(3):\n    print(i, i * i)", "0 0\n1 1\n2 4\n"),
    ("for i in range(3):\n    print(i, end=' ')\n", "0 1 2 "),
    ("from concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor(max_workers=3) as ex:\n"
     "    print(sum(ex.map(lambda n: n * n, range(10))))", "285\n"),
    ("import threading\nout = [0] * 4\ndef work(i):\n    out[i] = sum(range(i * 1000))\n"
     "ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]\nfor t in ts: t.start()\n"
     "for t in ts: t.join()\nprint(out)", "[0, 499500, 1999000, 4498500]\n"),
], ids=["sympy-solve", "sympy-integrate", "sympy-simplify", "fraction", "numpy-solve", "numpy-sum", "2**1000",
        "factorial-100", "unicode", "float-repr", "1e-05", "0.00001", "multi-line", "no-newline",
        "thread-pool", "threads"])
def test_legitimate_program_exact_stdout(sandbox, code, expected):
    """A legitimate math program is ok with its exact stdout, exit code 0 and empty stderr."""
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK, result.stderr
    assert result.ok
    assert result.stdout == expected
    assert result.stderr == ""
    assert result.exit_code == 0
    assert result.duration_s >= 0


def test_factorial_100_digits():
    """The hard-coded factorial(100) above is right (158 digits)."""
    import math
    assert str(math.factorial(100)).startswith("9332621544394415268169923885626670049071596826438162146859296389521759")
    assert len(str(math.factorial(100))) == 158


@pytest.mark.parametrize("module", ["heapq", "statistics", "itertools", "functools", "collections", "decimal",
                                    "random", "cmath", "bisect", "concurrent.futures", "calendar", "csv", "pprint",
                                    "sympy.combinatorics", "numpy.polynomial"])
def test_common_modules_import(sandbox, module):
    """Standard-library and preinstalled modules a math program may import can be imported."""
    result = sandbox.execute(f"import {module}\nprint('imported')")
    assert result.status is ExecStatus.OK, result.error_message
    assert result.stdout == "imported\n"


# ---------------------------------------------------------------- 14. status from how the process ended


def test_exception_is_error_with_last_traceback_line(sandbox):
    """An uncaught exception gives status error, exit code 1 and the exception line as error_message."""
    result = sandbox.execute("print('before')\nx = 1 / 0\n")
    assert result.status is ExecStatus.ERROR
    assert not result.ok
    assert result.exit_code == 1
    assert result.stdout == "before\n"
    assert result.error_message == "ZeroDivisionError: division by zero"
    assert "Traceback" in result.stderr and "<program>" in result.stderr
    assert "_worker.py" not in result.stderr  # the traceback starts at the program, not the worker


def test_error_text_with_exit_zero_is_ok(sandbox):
    """Status comes from the exit, not the text: printing 'Error: x' and exiting 0 is ok."""
    result = sandbox.execute("import sys\nprint('Error: x')\nprint('Traceback (most recent call last):', "
                             "file=sys.stderr)\nprint('MemoryError', file=sys.stderr)\n")
    assert result.status is ExecStatus.OK
    assert result.exit_code == 0
    assert result.stdout == "Error: x\n"


@pytest.mark.parametrize("code, status, exit_code", [
    ("import sys; sys.exit(3)", ExecStatus.ERROR, 3),
    ("import sys; sys.exit(86)", ExecStatus.ERROR, 86),
    ("import sys; sys.exit(0)", ExecStatus.OK, 0),
    ("import sys; sys.exit()", ExecStatus.OK, 0),
    ("import sys; print('x'); sys.exit(1)", ExecStatus.ERROR, 1),
    ("raise SystemExit(5)", ExecStatus.ERROR, 5),
    ("raise KeyboardInterrupt", ExecStatus.ERROR, 1),
])
def test_exit_code_decides_status(sandbox, code, status, exit_code):
    """sys.exit(n) is ok for 0 and error with exit_code n otherwise (86 is not memory)."""
    result = sandbox.execute(code)
    assert result.status is status
    assert result.exit_code == exit_code


def test_sys_exit_with_message_is_error(sandbox):
    """sys.exit('msg') is an error with exit code 1 and the message as error_message."""
    result = sandbox.execute("import sys; sys.exit('bad input')")
    assert result.status is ExecStatus.ERROR
    assert result.exit_code == 1
    assert result.error_message == "bad input"


@pytest.mark.parametrize("code", ["def (:\n", "print('unclosed", "x = = 1", "\tprint(1)\n  print(2)"])
def test_syntax_error_is_error(sandbox, code):
    """A program that does not compile is an error whose message names the SyntaxError."""
    result = sandbox.execute(code)
    assert result.status is ExecStatus.ERROR
    assert result.exit_code == 1
    assert "SyntaxError" in result.error_message or "IndentationError" in result.error_message
    assert result.stdout == ""


# ---------------------------------------------------------------- 15. the isolation report


def test_isolation_report_names_every_measure(sandbox):
    """sb.isolation names the network namespace, PID namespace, uid, seccomp and rlimits."""
    report = " ".join(sandbox.isolation)
    for phrase in ("network namespace", "PID namespace", "uid", "seccomp", "rlimits", "no_new_privs"):
        assert phrase in report
    assert "NO ISOLATION" not in report


def test_program_runs_unprivileged(sandbox):
    """The program sees uid != 0 (the reported one), no capabilities, NoNewPrivs 1 and Seccomp 2."""
    code = ("import os\n"
            "fields = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
            "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
            "for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp'):\n"
            "    print(k, fields[k].strip())\n")
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK, result.stderr
    lines = result.stdout.splitlines()
    uid, euid, gid, groups = lines[0].split(" ", 3)
    assert int(uid) == int(euid) == int(gid) != 0
    assert int(uid) in _sandbox_uids(sandbox)
    assert f"uid/gid {uid}" in " ".join(sandbox.isolation)
    assert groups == "[]"
    fields = dict(line.split(" ", 1) for line in lines[1:])
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[cap] == "0000000000000000", cap
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


def _syscall_program(name: str) -> str:
    arch = ARCHES[platform.machine()]
    calls = {
        "unshare-user": "libc.unshare(0x10000000)",
        "unshare-net": "libc.unshare(0x40000000)",
        "clone-newuser": f"libc.syscall({arch['clone']}, 0x10000000 | 17, 0, 0, 0, 0)",
        "clone-newpid": f"libc.syscall({arch['clone']}, 0x20000000 | 17, 0, 0, 0, 0)",
        "setns": "libc.setns(0, 0)",
        "mount": "libc.mount(b'none', b'.', b'tmpfs', 0, None)",
        "ptrace-traceme": "libc.ptrace(0, 0, None, None)",
        "io_uring_setup": "libc.syscall(425, 1, None)",
        "chroot": "libc.chroot(b'.')",
    }
    return ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"r = {calls[name]}\n"
            "if r == 0 and os.getpid() != 1:\n    os._exit(0)  # a child of a clone that should not exist\n"
            "print(r, ctypes.get_errno())\n")


@pytest.mark.skipif(platform.machine() not in ARCHES, reason="no seccomp table for this architecture")
@pytest.mark.parametrize("name", ["unshare-user", "unshare-net", "clone-newuser", "clone-newpid", "setns", "mount",
                                  "ptrace-traceme", "io_uring_setup", "chroot"])
def test_seccomp_denies_escape_syscalls(sandbox, name):
    """Namespace, mount, ptrace and io_uring syscalls fail with EPERM."""
    result = sandbox.execute(_syscall_program(name))
    assert result.status is ExecStatus.OK, result.stderr
    assert result.stdout == "-1 1\n"


# ---------------------------------------------------------------- 16. failing closed, and the opt-out


class _NonRootSandbox(LocalSandbox):
    """Starts strict workers in a fresh user namespace without a uid mapping: they run as a non-root uid."""

    def new_worker(self) -> Worker:
        argv = ["unshare", "--user", sys.executable, "-I", "-X", "utf8", str(WORKER),
                json.dumps(worker_settings(self.config))]
        return Worker(argv, WORKER_ENV)


def _can_unshare_user() -> bool:
    try:
        return subprocess.run(["unshare", "--user", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_strict_without_root_fails_closed():
    """Strict isolation in a worker that is not root raises SandboxIsolationError and runs nothing."""
    if not _can_unshare_user():
        pytest.skip("cannot start a non-root worker here: `unshare --user` is unavailable")
    sb = _NonRootSandbox(SandboxConfig(timeout_s=2, workers=1))
    try:
        with pytest.raises(SandboxIsolationError, match="needs root"):
            sb.run(["print('must not run')"])
        with pytest.raises(SandboxIsolationError):
            sb.isolation
        assert sb.executed == 0
        assert sb.workers == []
    finally:
        sb.close()


def test_isolation_none_works_and_says_so():
    """isolation='none' runs programs, and its report says NO ISOLATION."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1, isolation="none")) as sb:
        assert any("NO ISOLATION" in line for line in sb.isolation)
        result = sb.execute("from sympy import symbols, solve\nx = symbols('x')\nprint(solve(x**2 - 4, x))")
        assert result.status is ExecStatus.OK
        assert result.stdout == "[-2, 2]\n"
        assert sb.execute("import time; time.sleep(100)", timeout_s=1).status is ExecStatus.TIMEOUT


def _kill_worker_program(record: Path) -> str:
    """A program (isolation none: it sees the host) that notes its scratch dir in `record`, then kills its worker."""
    return (f"import os, signal\nopen({str(record)!r}, 'w').write(os.getcwd())\n"
            "os.kill(os.getppid(), signal.SIGKILL)\n")


def test_none_mode_program_killing_its_worker_is_killed_and_not_cached(tmp_path):
    """Without isolation, a program killing its worker is killed, not cached, its scratch removed; the pool recovers."""
    record = tmp_path / "scratch.txt"
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1, isolation="none")) as sb:
        before = sb.execute("import os; print(os.getppid())")
        assert before.ok
        start = time.monotonic()
        result = sb.execute(_kill_worker_program(record))
        assert time.monotonic() - start < 15
        assert result.status is ExecStatus.KILLED
        assert "worker died" in result.error_message
        scratch = record.read_text()
        assert scratch and not os.path.exists(scratch)
        after = sb.execute("import os; print(os.getppid())  # after")
        assert after.status is ExecStatus.OK
        assert after.stdout != before.stdout  # a different worker ran it
        executed = sb.executed
        assert sb.execute(_kill_worker_program(record)).status is ExecStatus.KILLED
        assert sb.executed == executed + 1  # killed results are not cached
        assert sb.execute("print(1)").stdout == "1\n"


# ---------------------------------------------------------------- 17. the result cache


def test_cache_runs_identical_program_once(sandbox):
    """The same program run twice executes once; the second result comes from the cache."""
    code = f"print('cache me', {random.randrange(10**9)})"
    executed, hits = sandbox.executed, sandbox.cache.hits
    first = sandbox.execute(code)
    second = sandbox.execute(code)
    assert first.ok and second == first
    assert sandbox.executed == executed + 1
    assert sandbox.cache.hits == hits + 1


def test_cache_key_includes_timeout(sandbox):
    """The same program under a different time limit runs again."""
    code = f"print('timeout key', {random.randrange(10**9)})"
    executed = sandbox.executed
    sandbox.execute(code, timeout_s=1)
    sandbox.execute(code, timeout_s=1.5)
    sandbox.execute(code, timeout_s=1)
    assert sandbox.executed == executed + 2


def test_duplicates_in_one_batch_run_once(sandbox):
    """Duplicate programs within a batch run once and every copy gets the result."""
    n = random.randrange(10**9)
    a, b = f"print('dup a', {n})", f"print('dup b', {n})"
    executed = sandbox.executed
    results = sandbox.run([a, b, a, a, b])
    assert [r.stdout for r in results] == [f"dup {c} {n}\n" for c in "abaab"]
    assert sandbox.executed == executed + 2


def test_cache_disabled_runs_twice():
    """With cache_size=0 the same program executes every time."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1, cache_size=0)) as sb:
        code = "print('no cache')"
        assert sb.execute(code).stdout == "no cache\n"
        assert sb.execute(code).stdout == "no cache\n"
        assert sb.run([code, code])[1].stdout == "no cache\n"
        assert sb.executed == 3
        assert sb.cache.hits == 0


def test_cached_timeout_is_not_rerun(sandbox):
    """A timed-out program is cached like any other result: the second call is instant and identical."""
    code = f"import time; time.sleep(100)  # {random.randrange(10**9)}"
    first = sandbox.execute(code, timeout_s=1)
    executed = sandbox.executed
    second = sandbox.execute(code, timeout_s=1)
    assert first.status is ExecStatus.TIMEOUT and second == first
    assert sandbox.executed == executed


# ---------------------------------------------------------------- cgroup safety net


def test_cgroup_caps_a_process_tree_where_available():
    """Where cgroups are writable, children that together exceed the tree's memory cap are OOM-killed
    inside the cgroup, the host is untouched and the worker keeps serving."""
    with make_sandbox(SandboxConfig(timeout_s=10, memory_mb=600, workers=1, cache_size=0)) as sb:
        if not any(line.startswith("cgroup: a worker") for line in sb.isolation):
            pytest.skip(f"no writable cgroup controllers here: {sb.isolation[-2]}")
        code = ("import os, time\nkids = []\nfor i in range(6):\n    pid = os.fork()\n    if pid == 0:\n"
                "        b = bytearray(400 * 1024**2)\n        time.sleep(1)\n        os._exit(0)\n"
                "    kids.append(pid)\nprint(sorted(os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids))")
        result = sb.execute(code)
        codes = json.loads(result.stdout)
        assert -9 in codes  # 6 x 400 MiB do not fit in the 1200 MiB cap: the OOM killer stepped in
        assert sb.execute("print('alive')").stdout == "alive\n"
