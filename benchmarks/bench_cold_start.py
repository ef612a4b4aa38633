"""Start-up cost of the command line: ``jaxinfo entropy --example`` against ``quests entropy``.

In one run, on the same file (the bundled Cu example, 84 frames, 4368 environments) and the same
parameters (k = 32, cutoff 5 Å, h = 0.015), end to end as a user types them:

* jaxinfo **cold**: a fresh, empty persistent compilation cache (a new temporary
  ``XDG_CACHE_HOME``), so every program is compiled;
* jaxinfo **warm**: the same cache again (the second run of a user);
* jaxinfo **no cache**: ``--no-cache`` (every run compiles, as before the cache was on);
* ``quests entropy FILE`` (the peer's command; numba caches its compiled code in its package, so
  its first run here is already warm).

Each is run ``--repeats`` times (median reported); the cold run gets a new cache directory each
time. The XLA programs of a cold and a warm run (compiled, or loaded from the persistent cache)
are counted with ``JAX_LOG_COMPILES=1``. Prints the ratios and writes
``benchmarks/measured/bench_cold_start.json`` with the machine's load average: on a shared
machine the ratios move with it.

    python benchmarks/bench_cold_start.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine, write_json

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _command(name: str) -> list[str]:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed (pip install '.[peer]' for quests)")
    return [found]


def _timed(argv: list[str], env: dict, cwd: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    return elapsed, result


def _compilations(stderr: str) -> dict[str, int]:
    """XLA programs of a run logged with JAX_LOG_COMPILES=1: compiled, and loaded from the
    persistent cache (JAX logs 'Finished XLA compilation' for both)."""
    lines = stderr.splitlines()
    finished = sum(1 for line in lines if "Finished XLA compilation" in line)
    hits = sum(1 for line in lines if "Persistent compilation cache hit" in line)
    return {"compiled": finished - hits, "cache_hits": hits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (median reported)")
    parser.add_argument(
        "--out", default=str(HERE / "measured" / "bench_cold_start.json"), help="JSON to write"
    )
    args = parser.parse_args()

    from jaxinfo.datasets import example_path

    example = str(example_path())
    jaxinfo = _command("jaxinfo")
    quests = _command("quests")
    base_env = dict(os.environ, JAX_PLATFORMS="cpu")
    for key in ("JAX_COMPILATION_CACHE_DIR", "JAXINFO_NO_CACHE", "JAX_ENABLE_X64"):
        base_env.pop(key, None)

    times: dict[str, list[float]] = {"jaxinfo_cold": [], "jaxinfo_warm": [], "jaxinfo_no_cache": []}
    times["quests"] = []
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="jaxinfo-bench-") as work:
        jaxinfo_args = [*jaxinfo, "entropy", "--example", "-q"]
        quests_args = [*quests, "entropy", example]
        # quests once untimed: numba compiles into its own on-disk cache on a first-ever run.
        _timed(quests_args, base_env, work)
        for repeat in range(args.repeats):
            cache = tempfile.mkdtemp(prefix=f"cache{repeat}-", dir=work)
            env = dict(base_env, XDG_CACHE_HOME=cache)
            log_env = dict(env, JAX_LOG_COMPILES="1")
            elapsed, result = _timed(jaxinfo_args, log_env if repeat == 0 else env, work)
            times["jaxinfo_cold"].append(elapsed)
            if repeat == 0:
                counts["cold"] = _compilations(result.stderr)
            elapsed, result = _timed(jaxinfo_args, log_env if repeat == 0 else env, work)
            times["jaxinfo_warm"].append(elapsed)
            if repeat == 0:
                counts["warm"] = _compilations(result.stderr)
            times["jaxinfo_no_cache"].append(_timed([*jaxinfo_args, "--no-cache"], env, work)[0])
            times["quests"].append(_timed(quests_args, base_env, work)[0])
        import_s = _timed([sys.executable, "-c", "import jaxinfo.cli"], base_env, work)[0]

    load = list(os.getloadavg())
    median = {name: statistics.median(values) for name, values in times.items()}
    ratios = {
        "cold / quests": median["jaxinfo_cold"] / median["quests"],
        "warm / quests": median["jaxinfo_warm"] / median["quests"],
        "no_cache / quests": median["jaxinfo_no_cache"] / median["quests"],
    }
    for name, value in median.items():
        print(f"{name:18s} {value:7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"{'import jaxinfo.cli':18s} {import_s:7.2f} s")
    for name, value in ratios.items():
        print(f"{name:18s} {value:7.2f}x")
    print(f"XLA programs (compiled / from the persistent cache): {counts}")
    write_json(
        args.out,
        {
            "benchmark": "bench_cold_start",
            "command": "jaxinfo entropy --example -q  vs  quests entropy <example file>",
            "file": "jaxinfo/data/cu_example.xyz (84 frames, 4368 environments)",
            "machine": machine(),
            "load_average_1_5_15": load,
            "repeats": args.repeats,
            "seconds": times,
            "median_s": median,
            "import_jaxinfo_cli_s": import_s,
            "ratios": ratios,
            "xla_compilations": counts,
        },
    )


if __name__ == "__main__":
    main()
