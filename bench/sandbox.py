"""Sandbox throughput and latency, three ways, in one run:

  local   the local backend: warm workers (sympy, numpy imported), a fresh isolated child per program
  fresh   a fresh `python -c` subprocess per program (pays interpreter start and imports every time)
  unsafe  in-process `exec` in persistent workers, as the published rStar code does (no isolation,
          state shared between programs)

Throughput runs a corpus as one batch on `--workers` processes, for `--repeat` different corpora
(the median is reported: this kind of machine is noisy; corpora differ so that the unsafe workers'
caches do not serve a repeat); latency is one program at a time. The result cache is
off, so every program really runs. Prints figures and the ratios local/fresh and local/unsafe
(targets: >= 10x and >= 0.3x).

    .venv/bin/python bench/sandbox.py [--solutions 60] [--fresh 30] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import programs  # noqa: E402

from rstar_pipeline.sandbox import SandboxConfig, make_sandbox  # noqa: E402


def percentiles(latencies: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(latencies, n=100, method="inclusive")
    return qs[49] * 1000, qs[98] * 1000


def throughput(run, corpora: list[list[str]]) -> tuple[float, list]:
    """Median programs/s over the corpora, and the outputs of the first one."""
    rates, first = [], None
    for corpus in corpora:
        start = time.perf_counter()
        out = run(corpus)
        rates.append(len(corpus) / (time.perf_counter() - start))
        first = out if first is None else first
    return statistics.median(rates), first


def bench_local(corpora: list[list[str]], workers: int, latency_n: int) -> dict:
    progs = corpora[0]
    with make_sandbox(SandboxConfig(cache_size=0, workers=workers, timeout_s=30)) as sb:
        sb.run(["print(0)"] * workers * 2)  # start and warm the workers
        rate, results = throughput(sb.run, corpora)
        failed = [r for r in results if not r.ok]
        lat = []
        for p in progs[:latency_n]:
            t0 = time.perf_counter()
            sb.execute(p)
            lat.append(time.perf_counter() - t0)
        report = getattr(sb, "isolation", None)
    return {"throughput": rate, "latency": percentiles(lat), "failed": len(failed),
            "stdout": [r.stdout for r in results], "isolation": report}


def _fresh_one(code: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return time.perf_counter() - t0, out.stdout


def bench_fresh(progs: list[str], workers: int) -> dict:
    with ThreadPoolExecutor(workers) as pool:
        rate, done = throughput(lambda c: list(pool.map(_fresh_one, c)), [progs])
    return {"throughput": rate, "latency": percentiles([d for d, _ in done])}


def _preload() -> None:
    import fractions  # noqa: F401

    import numpy  # noqa: F401
    import sympy  # noqa: F401


_SHARED: dict = {}


def _unsafe_one(code: str) -> tuple[float, str]:
    """The reference's approach: exec in the worker itself, globals shared between programs."""
    t0 = time.perf_counter()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            exec(code, _SHARED)
        except Exception as e:  # noqa: BLE001 - a failing program is a result, as in the reference
            print(f"{type(e).__name__}: {e}")
    return time.perf_counter() - t0, buf.getvalue()


def bench_unsafe(corpora: list[list[str]], workers: int, latency_n: int) -> dict:
    progs = corpora[0]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_preload) as pool:
        pool.map(_unsafe_one, ["print(0)"] * workers * 2)
        rate, done = throughput(lambda c: pool.map(_unsafe_one, c, chunksize=1), corpora)
        lat = []
        for p in progs[:latency_n]:
            t0 = time.perf_counter()
            pool.apply(_unsafe_one, (p,))
            lat.append(time.perf_counter() - t0)
    return {"throughput": rate, "latency": percentiles(lat), "stdout": [s for _, s in done]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--solutions", type=int, default=60, help="solutions in the corpus (each gives 4-6 programs)")
    ap.add_argument("--fresh", type=int, default=30, help="programs run by the slow fresh-subprocess baseline")
    ap.add_argument("--latency", type=int, default=100, help="programs timed one at a time for latency")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="corpora (different seeds) run by local and unsafe")
    args = ap.parse_args()
    corpora = [programs(args.solutions, seed) for seed in range(args.repeat)]
    progs = corpora[0]
    print(f"corpus: {len(progs)} cumulative programs from {args.solutions} solutions, x{args.repeat} seeds; "
          f"{args.workers} workers\n")
    local = bench_local(corpora, args.workers, args.latency)
    unsafe = bench_unsafe(corpora, args.workers, args.latency)
    fresh = bench_fresh(progs[::max(1, len(progs) // args.fresh)][:args.fresh], args.workers)
    print(f"{'backend':10} {'programs/s':>11} {'p50 ms':>9} {'p99 ms':>9}")
    for name, r in (("local", local), ("fresh", fresh), ("unsafe", unsafe)):
        print(f"{name:10} {r['throughput']:11.1f} {r['latency'][0]:9.2f} {r['latency'][1]:9.2f}")
    print(f"\nlocal / fresh  throughput: {local['throughput'] / fresh['throughput']:6.1f}x   (target >= 10x)")
    print(f"local / unsafe throughput: {local['throughput'] / unsafe['throughput']:6.2f}x   (target >= 0.3x)")
    same = sum(a == b for a, b in zip(local["stdout"], unsafe["stdout"]))
    print(f"\nlocal failures: {local['failed']}; identical stdout local vs unsafe: {same}/{len(progs)}")
    if local["isolation"]:
        print("isolation active in the local backend:")
        for line in local["isolation"]:
            print(f"  - {line}")


if __name__ == "__main__":
    main()
