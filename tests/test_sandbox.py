"""Tests of the local sandbox: `rstar_pipeline.sandbox` (base.py, local.py, _worker.py).

Each program runs in a fresh forked child of a warm worker; statuses come from how the process
ended. One module-scoped sandbox serves most tests; tests that need their own config (or that
must not disturb the shared pool) make their own instance.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from rstar_pipeline.sandbox import ExecResult, ExecStatus, SandboxConfig, make_sandbox
from rstar_pipeline.sandbox.local import LocalSandbox


@pytest.fixture(scope="module")
def sandbox():
    with make_sandbox(SandboxConfig(timeout_s=2)) as sb:
        yield sb


@pytest.fixture(scope="module")
def limited():
    """A sandbox with a small address-space limit and a small output cap."""
    with make_sandbox(SandboxConfig(timeout_s=2, memory_mb=512, max_output_bytes=1000)) as sb:
        yield sb


def _process_gone(pid: int) -> bool:
    """True when `pid` no longer runs: it does not exist, or it is a zombie waiting for init to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


# --- the factory and the config ------------------------------------------------------------------


def test_make_sandbox_returns_local_sandbox():
    """make_sandbox with the local backend returns a LocalSandbox usable as a context manager."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
        assert isinstance(sb, LocalSandbox)
        assert sb.execute("print('hi')").stdout == "hi\n"


@pytest.mark.parametrize("kwargs", [
    {"backend": "nope"},
    {"timeout_s": 0},
    {"timeout_s": -1},
    {"memory_mb": 0},
    {"workers": -1},
])
def test_config_validation(kwargs):
    """Invalid SandboxConfig values raise ValueError."""
    with pytest.raises(ValueError):
        SandboxConfig(**kwargs)


# --- ok programs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code, expected", [
    ("print(2**200)", f"{2**200}\n"),
    ("from fractions import Fraction; print(Fraction(1,3)+Fraction(1,6))", "1/2\n"),
    ("print('héllo ∑ π 😀')", "héllo ∑ π 😀\n"),
    ("print(0.00001)", "1e-05\n"),
    ("print(0.1 + 0.2)", "0.30000000000000004\n"),
    ("import math; print(math.factorial(30))", "265252859812191058636308480000000\n"),
    ("for i in range(3):\n    print(i, end=' ')\n", "0 1 2 "),
])
def test_ok_program_exact_stdout(sandbox, code, expected):
    """A program that ends normally is ok with its exact stdout, exit code 0 and empty stderr."""
    result = sandbox.execute(code)
    assert result.status is ExecStatus.OK
    assert result.ok
    assert result.stdout == expected
    assert result.stderr == ""
    assert result.exit_code == 0
    assert result.duration_s >= 0


# --- errors --------------------------------------------------------------------------------------


def test_exception_is_error_with_last_traceback_line(sandbox):
    """An uncaught exception gives status error, exit code 1 and the exception line as error_message."""
    result = sandbox.execute("print('before')\nx = 1 / 0\n")
    assert result.status is ExecStatus.ERROR
    assert not result.ok
    assert result.exit_code == 1
    assert result.stdout == "before\n"
    assert result.error_message == "ZeroDivisionError: division by zero"
    assert "Traceback" in result.stderr
    assert "<program>" in result.stderr
    assert "_worker.py" not in result.stderr  # the traceback starts at the program, not the worker


def test_syntax_error_is_error(sandbox):
    """A program that does not compile is an error whose message is the SyntaxError line."""
    result = sandbox.execute("def (:\n")
    assert result.status is ExecStatus.ERROR
    assert result.exit_code == 1
    assert result.error_message.startswith("SyntaxError")


def test_error_text_with_exit_zero_is_ok(sandbox):
    """Status comes from the exit, not the text: printing 'Error: ...' and exiting 0 is ok."""
    result = sandbox.execute("import sys\nprint('Error: something')\nprint('Traceback', file=sys.stderr)\n")
    assert result.status is ExecStatus.OK
    assert result.exit_code == 0
    assert result.stdout == "Error: something\n"


@pytest.mark.parametrize("code, status, exit_code", [
    ("import sys; sys.exit(3)", ExecStatus.ERROR, 3),
    ("import sys; sys.exit(0)", ExecStatus.OK, 0),
    ("import sys; sys.exit()", ExecStatus.OK, 0),
    ("import sys; print('x'); sys.exit(1)", ExecStatus.ERROR, 1),
])
def test_sys_exit_code_decides_status(sandbox, code, status, exit_code):
    """sys.exit(n) is ok for 0 and error with exit_code n otherwise."""
    result = sandbox.execute(code)
    assert result.status is status
    assert result.exit_code == exit_code


def test_sys_exit_with_message_is_error(sandbox):
    """sys.exit('msg') is an error with exit code 1 and the message on stderr."""
    result = sandbox.execute("import sys; sys.exit('bad input')")
    assert result.status is ExecStatus.ERROR
    assert result.exit_code == 1
    assert result.error_message == "bad input"


# --- timeouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [
    "while True: pass",
    "while True:\n try:\n  pass\n except BaseException:\n  pass",
    "import time; time.sleep(100)",
], ids=["busy-loop", "loop-catching-everything", "sleep"])
def test_timeout(sandbox, code):
    """A program that runs past its 1 s limit is a timeout and the call returns within 10 s."""
    start = time.monotonic()
    result = sandbox.execute(code, timeout_s=1)
    elapsed = time.monotonic() - start
    assert result.status is ExecStatus.TIMEOUT
    assert result.error_message == "TimeoutError: the program exceeded its time limit"
    assert elapsed < 10


def test_output_before_timeout_is_kept(sandbox):
    """Output flushed before a timeout is kept in the result."""
    result = sandbox.execute("import sys, time\nprint('started', flush=True)\ntime.sleep(100)\n", timeout_s=1)
    assert result.status is ExecStatus.TIMEOUT
    assert result.stdout == "started\n"


# --- memory, crashes, lost workers ---------------------------------------------------------------


def test_memory_bomb_is_memory(limited):
    """Allocating 4 GiB under a 512 MiB address-space limit gives status memory."""
    result = limited.execute("x = bytearray(4 * 1024**3)")
    assert result.status is ExecStatus.MEMORY
    assert "MemoryError" in result.error_message
    # the sandbox keeps working
    assert limited.execute("print('after')").stdout == "after\n"


def test_segfault_is_killed_and_sandbox_keeps_working(sandbox):
    """A segfaulting program is killed (by SIGSEGV) and the sandbox keeps working afterwards."""
    result = sandbox.execute("import ctypes; ctypes.string_at(0)")
    assert result.status is ExecStatus.KILLED
    assert result.exit_code == -11
    after = sandbox.execute("print('still here')")
    assert after.status is ExecStatus.OK
    assert after.stdout == "still here\n"


def _kill_worker_program(record: Path) -> str:
    """A program that notes its scratch directory in `record`, then SIGKILLs its own worker."""
    return (f"import os, signal\nopen({str(record)!r}, 'w').write(os.getcwd())\n"
            "os.kill(os.getppid(), signal.SIGKILL)\n")


def _remove_recorded_scratch(record: Path) -> None:
    if record.exists():
        shutil.rmtree(record.read_text(), ignore_errors=True)


def test_program_killing_its_worker_is_killed_and_worker_is_replaced(tmp_path):
    """A program that SIGKILLs its worker is killed; the next run works on a fresh worker."""
    record = tmp_path / "scratch.txt"
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
        before = sb.execute("import os; print(os.getppid())")
        assert before.ok
        start = time.monotonic()
        result = sb.execute(_kill_worker_program(record))
        assert time.monotonic() - start < 10
        assert result.status is ExecStatus.KILLED
        _remove_recorded_scratch(record)
        assert result.error_message  # says what happened
        after = sb.execute("import os; print(os.getppid())  # after")  # not the cached program
        assert after.status is ExecStatus.OK
        assert after.stdout.strip() != before.stdout.strip()  # a different worker ran it
        # a killed result is not cached: the same program runs again (and is killed again)
        executed = sb.executed
        again = sb.execute(_kill_worker_program(record))
        assert again.status is ExecStatus.KILLED
        assert sb.executed == executed + 1
        assert sb.execute("print(1)").stdout == "1\n"
    _remove_recorded_scratch(record)  # see test_scratch_removed_when_worker_is_killed


def test_scratch_removed_when_worker_is_killed(tmp_path):
    """The scratch directory of a program that killed its worker is removed too."""
    record = tmp_path / "scratch.txt"
    try:
        with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
            assert sb.execute(_kill_worker_program(record)).status is ExecStatus.KILLED
        scratch = record.read_text()
        assert scratch
        assert not os.path.exists(scratch)
    finally:
        _remove_recorded_scratch(record)


# --- output limits -------------------------------------------------------------------------------


def test_large_stdout_is_truncated_with_marker(limited):
    """stdout beyond max_output_bytes keeps its first and last 500 bytes around a truncation marker."""
    result = limited.execute("print('a' * 2500 + 'z' * 2500)")
    assert result.status is ExecStatus.OK
    head, marker, tail = result.stdout.split("\n", 2)
    assert head == "a" * 500 and tail == "z" * 499 + "\n"
    assert marker == "[output truncated at 1000 bytes: 4001 bytes cut here]"


def test_output_at_the_limit_is_not_truncated(limited):
    """stdout of exactly max_output_bytes is kept whole, without a marker."""
    result = limited.execute("import sys; sys.stdout.write('b' * 1000)")
    assert result.stdout == "b" * 1000


def test_large_stderr_is_truncated_with_marker(limited):
    """stderr beyond max_output_bytes is cut with the marker too."""
    result = limited.execute("import sys; sys.stderr.write('e' * 5000)")
    assert result.status is ExecStatus.OK
    assert "[output truncated at 1000 bytes" in result.stderr and len(result.stderr) < 1200


def test_error_message_survives_stderr_truncation(limited):
    """After a lot of stderr, error_message is still the exception line."""
    result = limited.execute("import sys\nsys.stderr.write('x' * 2000 + '\\n')\n1 / 0\n")
    assert result.status is ExecStatus.ERROR
    assert result.error_message == "ZeroDivisionError: division by zero"


def test_exit_86_is_error_not_memory(sandbox):
    """A program that exits with code 86 is an ordinary error."""
    result = sandbox.execute("import sys; sys.exit(86)")
    assert result.status is ExecStatus.ERROR


# --- isolation -----------------------------------------------------------------------------------


def test_environment_does_not_leak(monkeypatch):
    """A variable of the parent's environment is invisible to programs, also in /proc/self/environ."""
    monkeypatch.setenv("RSTAR_TEST_SECRET", "x")
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1)) as sb:
        result = sb.execute("import os; print(os.environ.get('RSTAR_TEST_SECRET'))")
        assert result.status is ExecStatus.OK
        assert result.stdout == "None\n"
        proc = sb.execute("print(open('/proc/self/environ', 'rb').read())")
        assert proc.status is ExecStatus.OK
        assert "RSTAR_TEST_SECRET" not in proc.stdout
        names = sb.execute("import os; print(sorted(os.environ))")
        assert "RSTAR_TEST_SECRET" not in names.stdout


def test_scratch_cwd_is_removed_and_not_shared(sandbox):
    """Each program runs in its own scratch directory, removed after the run."""
    first = sandbox.execute("import os\nopen('note.txt', 'w').write('hi')\nprint(os.getcwd())\n")
    assert first.status is ExecStatus.OK
    scratch = first.stdout.strip()
    assert os.path.isabs(scratch)
    assert not os.path.exists(scratch)
    second = sandbox.execute(
        "import os\n"
        f"print(os.path.exists('note.txt'), os.listdir('.'), os.path.exists({scratch!r}))\n"
        "print(os.getcwd())\n")
    assert second.status is ExecStatus.OK
    seen, cwd = second.stdout.splitlines()
    assert seen == "False [] False"
    assert cwd != scratch


def test_globals_do_not_leak_between_programs(sandbox):
    """A name defined by one program is undefined in the next."""
    assert sandbox.execute("x = 41").ok
    result = sandbox.execute("print(x)")
    assert result.status is ExecStatus.ERROR
    assert result.error_message == "NameError: name 'x' is not defined"


def test_module_state_does_not_leak_between_programs(sandbox):
    """Changes to an imported (preloaded) module by one program are not seen by the next."""
    assert sandbox.execute("import math; math.rstar_marker = 1").ok
    result = sandbox.execute("import math; print(hasattr(math, 'rstar_marker'))")
    assert result.stdout == "False\n"


def test_background_process_is_killed(sandbox):
    """A background process started by a program does not outlive the run."""
    result = sandbox.execute("import subprocess\np = subprocess.Popen(['sleep', '60'])\nprint(p.pid)\n")
    assert result.status is ExecStatus.OK
    pid = int(result.stdout)
    deadline = time.monotonic() + 2
    while not _process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _process_gone(pid)


def test_stdin_is_empty(sandbox):
    """A program reading stdin gets end-of-file at once."""
    result = sandbox.execute("import sys; print(repr(sys.stdin.read()))")
    assert result.status is ExecStatus.OK
    assert result.stdout == "''\n"


# --- batches and the cache -----------------------------------------------------------------------


def test_batch_results_in_input_order(sandbox):
    """50 programs in one call come back in input order."""
    programs = [f"print({i})" for i in range(50)]
    results = sandbox.run(programs)
    assert len(results) == 50
    assert all(isinstance(r, ExecResult) for r in results)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(50)]


def test_batch_with_mixed_outcomes_keeps_order(sandbox):
    """A batch mixing ok, error and timeout programs keeps each result at its program's index."""
    programs = ["print('a')", "1/0", "import time; time.sleep(100)", "print('d')", "import sys; sys.exit(2)"]
    results = sandbox.run(programs, timeout_s=1)
    assert [r.status for r in results] == [ExecStatus.OK, ExecStatus.ERROR, ExecStatus.TIMEOUT,
                                           ExecStatus.OK, ExecStatus.ERROR]
    assert results[0].stdout == "a\n"
    assert results[3].stdout == "d\n"
    assert results[4].exit_code == 2


def test_empty_batch(sandbox):
    """An empty batch returns an empty list."""
    assert sandbox.run([]) == []


def test_cache_runs_identical_program_once(sandbox):
    """The same program run twice executes once; the second result comes from the cache."""
    code = "print('cache me', 12345)"
    executed, hits = sandbox.executed, sandbox.cache.hits
    first = sandbox.execute(code)
    second = sandbox.execute(code)
    assert first.stdout == second.stdout == "cache me 12345\n"
    assert sandbox.executed == executed + 1
    assert sandbox.cache.hits == hits + 1
    assert second == first


def test_cache_key_includes_timeout(sandbox):
    """The same program under a different time limit runs again."""
    code = "print('timeout key')"
    executed = sandbox.executed
    sandbox.execute(code, timeout_s=1)
    sandbox.execute(code, timeout_s=1.5)
    assert sandbox.executed == executed + 2


def test_duplicates_in_one_batch_run_once(sandbox):
    """Duplicate programs within a batch run once and every copy gets the result."""
    a, b = "print('dup a')", "print('dup b')"
    executed = sandbox.executed
    results = sandbox.run([a, b, a, a, b])
    assert [r.stdout for r in results] == ["dup a\n", "dup b\n", "dup a\n", "dup a\n", "dup b\n"]
    assert sandbox.executed == executed + 2


def test_cache_disabled_runs_twice():
    """With cache_size=0 the same program executes every time."""
    with make_sandbox(SandboxConfig(timeout_s=2, workers=1, cache_size=0)) as sb:
        code = "print('no cache')"
        assert sb.execute(code).stdout == "no cache\n"
        assert sb.execute(code).stdout == "no cache\n"
        assert sb.executed == 2
        assert sb.cache.hits == 0


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
