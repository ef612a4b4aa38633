"""Shared helpers for the benchmark scripts: each measurement runs in a fresh subprocess so that
first-call (compile) time and peak memory (max RSS) are measured cleanly."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

MEASURE = textwrap.dedent(
    """
    import json, resource, sys, time
    def rss_mib():  # peak resident memory of this process (VmHWM resets at exec, ru_maxrss not)
        for row in open("/proc/self/status"):
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) / 1024.0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    {setup}
    baseline = rss_mib()
    start = time.perf_counter(); result = run(); first = time.perf_counter() - start
    times = []
    for _ in range({repeats}):  # repeats=0: the first call is the steady one
        start = time.perf_counter(); result = run(); times.append(time.perf_counter() - start)
    print("RESULT" + json.dumps({{"first_s": first, "steady_s": min(times) if times else first,
        "peak_rss_mib": rss_mib(), "baseline_rss_mib": baseline, "value": summary(result)}}))
    """
)


def measure(setup: str, repeats: int = 2, env: dict | None = None, timeout: int = 3600) -> dict:
    """Runs ``setup`` (which defines ``run()`` and ``summary(result)``) in a subprocess.

    Returns first-call time, best steady-state time, peak RSS and RSS before the first call.
    """
    code = MEASURE.format(setup=textwrap.dedent(setup), repeats=repeats)
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-4000:]}")
    line = [row for row in out.stdout.splitlines() if row.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def machine() -> dict:
    """A short description of where the numbers were taken."""
    import jax

    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    print(f"wrote {path}")
