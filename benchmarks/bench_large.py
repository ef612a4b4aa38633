"""Entropy at a million environments: sampled estimators, out-of-core dH, the peer's approximation.

One run, same machine, float32 (JAX's default):

1. descriptors of N_large environments: 864-atom fcc Cu cells (6x6x6 cubic) with 0-17
   vacancies and Gaussian thermal displacements of 0.02-0.2 Angstrom per frame (as snapshots
   from 100 K to the melting point), written to a memory-mappable .npy;
2. exact H of the first N_exact rows (the affordable size), and every exact l_i = log p_i;
3. coverage at N_exact: (a) the plain estimator over 1000 seeds (its estimate is a function of
   the sampled l_i, so it is evaluated on the exact l_i), (b) ``jaxinfo.estimate_entropy``
   itself (control variate on, target 0.01 nats) over 20 seeds: fraction of seeds whose error
   is within 3 standard errors;
4. N_large: time to a standard error of 0.01 nats with ``estimate_entropy`` (first call, compile
   included), and the plain estimator's per-query spread, with the queries and time it would
   need for the same target;
5. dH of 10^4 new environments against the N_large references, exact: in memory
   (``delta_entropy``) and read block by block from the .npy (``delta_entropy_streamed``):
   time and peak memory (each in a fresh process);
6. the peer's approximate dH (quests ``approx_delta_entropy``, pynndescent, n = 3
   neighbours) against N_peer references, against the exact dH.

    python benchmarks/bench_large.py [--n-large 1000000] [--n-exact 200000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _harness import machine, measure, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
H = 0.015


def cu_frames(n_frames: int, seed: int):
    """Defective, thermally displaced 864-atom fcc Cu cells."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((6, 6, 6))
    for _ in range(n_frames):
        atoms = base.copy()
        vacancies = rng.choice(len(atoms), int(rng.integers(0, 18)), replace=False)
        del atoms[sorted(vacancies.tolist())]
        atoms.positions += rng.normal(0.0, rng.uniform(0.02, 0.2), atoms.positions.shape)
        yield atoms


def make_descriptors(n: int, path: str, seed: int) -> float:
    """Writes (n, 63) float32 descriptors to ``path``; returns the seconds taken."""
    import jaxinfo

    start = time.perf_counter()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 63))
    filled = 0
    frames = cu_frames(10**9, seed)
    while filled < n:
        chunk = jaxinfo.descriptors([next(frames) for _ in range(20)])
        take = min(chunk.shape[0], n - filled)
        out[filled : filled + take] = chunk[:take]
        filled += take
    out.flush()
    del out
    return time.perf_counter() - start


def coverage_plain(log_p: np.ndarray, n_queries: int, seeds: int) -> dict:
    """The plain estimator on the exact l_i: fraction of seeds within 3 standard errors."""
    n = log_p.shape[0]
    exact = np.log(n) - np.mean(log_p)
    inside, z = 0, []
    for seed in range(seeds):
        sample = log_p[np.random.default_rng(seed).choice(n, n_queries, replace=False)]
        value = np.log(n) - sample.mean()
        se = np.sqrt(sample.var(ddof=1) * (1 - n_queries / n) / n_queries)
        z.append((value - exact) / se)
        inside += abs(value - exact) <= 3 * se
    z = np.asarray(z)
    return {
        "estimator": "plain",
        "n_queries": n_queries,
        "seeds": seeds,
        "fraction_within_3_stderr": inside / seeds,
        "mean_z": float(z.mean()),
        "std_z": float(z.std()),
        "per_query_std_nats": float(log_p.std(ddof=1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-large", type=int, default=1_000_000)
    parser.add_argument("--n-exact", type=int, default=200_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-peer", type=int, default=100_000)
    parser.add_argument("--target", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=20, help="seeds of the real estimator")
    parser.add_argument("--workdir", default="/tmp/jaxinfo_bench_large")
    parser.add_argument("--out", default=os.path.join(HERE, "measured", "bench_large.json"))
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument(
        "--only-dh",
        action="store_true",
        help="only step 5 (dH), merged into an existing --out JSON",
    )
    parser.add_argument("--quick", action="store_true", help="N_large 10^5, N_exact 2*10^4")
    args = parser.parse_args()
    if args.quick:
        args.n_large, args.n_exact, args.n_test, args.n_peer = 100_000, 20_000, 2_000, 20_000
        args.seeds = 5
    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, f"cu_{args.n_large}.npy")
    test = os.path.join(args.workdir, f"cu_test_{args.n_test}.npy")
    report: dict = {"machine": machine(), "dtype": "float32", "h": H, "target": args.target}
    if args.only_dh and os.path.exists(args.out):
        with open(args.out) as handle:
            report = json.load(handle)
        report["dh_rerun_note"] = "dh_* rows from a later invocation with --only-dh"
    started = time.perf_counter()

    def save():
        report["total_s"] = time.perf_counter() - started
        write_json(args.out, report)

    # 1. descriptors
    if not os.path.exists(data):
        report["descriptors_s"] = make_descriptors(args.n_large, data, seed=0)
    if not os.path.exists(test):
        make_descriptors(args.n_test, test, seed=12345)
    report["n_large"], report["n_exact"], report["n_test"] = args.n_large, args.n_exact, args.n_test
    print("descriptors ready", flush=True)

    if not args.only_dh:
        steps_2_to_4(args, data, report, save)

    # 5. dH of N_test new environments against N_large references, exact
    dh_step(args, data, test, report, save)

    # 6. the peer's approximate dH against exact, on N_peer references
    if not args.skip_peer:
        peer_step(args, data, test, report)
    save()
    print(json.dumps(report, indent=1))


def steps_2_to_4(args, data, report, save) -> None:
    # 2. exact H at N_exact (fresh process: time and memory), saving every l_i
    log_p_path = os.path.join(args.workdir, f"log_p_{args.n_exact}.npy")
    exact = measure(
        f"""
        import numpy as np, jaxinfo
        x = np.load("{data}", mmap_mode="r")[:{args.n_exact}]
        x = np.ascontiguousarray(x)
        def run():
            return jaxinfo.log_kernel_sums(x, x, {H})
        def summary(l):
            np.save("{log_p_path}", l)
            return float(np.log(len(l)) - np.mean(l.astype(np.float64)))
        """,
        repeats=0,
    )
    report["exact_small"] = {
        "n": args.n_exact,
        "entropy": exact["value"],
        "seconds": exact["first_s"],
        "peak_rss_mib": exact["peak_rss_mib"],
        "kernel_evals_per_s": args.n_exact**2 / exact["first_s"],
    }
    print("exact", report["exact_small"], flush=True)
    save()

    # 3. coverage at N_exact
    log_p = np.load(log_p_path).astype(np.float64)
    report["coverage_plain"] = coverage_plain(log_p, n_queries=1000, seeds=1000)
    print("coverage plain", report["coverage_plain"], flush=True)
    real = measure(
        f"""
        import numpy as np, jaxinfo
        x = np.ascontiguousarray(np.load("{data}", mmap_mode="r")[:{args.n_exact}])
        def run():
            out = []
            for seed in range({args.seeds}):
                e = jaxinfo.estimate_entropy(x, {H}, n_queries=256, seed=seed,
                                             target_stderr={args.target})
                out.append((float(e.value), float(e.stderr), e.n_queries, e.n_control))
            return out
        def summary(r):
            return r
        """,
        repeats=0,
    )
    rows = real["value"]
    exact_h = report["exact_small"]["entropy"]
    report["coverage_estimator"] = {
        "estimator": "estimate_entropy, control variate, adaptive",
        "seeds": args.seeds,
        "fraction_within_3_stderr": float(
            np.mean([abs(v - exact_h) <= 3 * s for v, s, _, _ in rows])
        ),
        "errors_nats": [v - exact_h for v, _, _, _ in rows],
        "stderr_nats": [s for _, s, _, _ in rows],
        "n_queries": [n for _, _, n, _ in rows],
        "n_control": rows[0][3],
        "seconds_per_estimate": real["first_s"] / args.seeds,
    }
    print("coverage estimator", report["coverage_estimator"], flush=True)
    save()

    # 4. N_large: time to the target standard error
    timed = measure(
        f"""
        import numpy as np, jaxinfo
        x = np.load("{data}")
        def run():
            return jaxinfo.estimate_entropy(x, {H}, n_queries=256, seed=0,
                                            target_stderr={args.target})
        def summary(e):
            return [float(e.value), float(e.stderr), e.n_queries, e.n_control]
        """,
        repeats=0,
    )
    value, stderr, n_queries, n_control = timed["value"]
    report["large_sampled"] = {
        "n": args.n_large,
        "entropy": value,
        "stderr": stderr,
        "n_queries": n_queries,
        "n_control": n_control,
        "seconds_to_target": timed["first_s"],
        "peak_rss_mib": timed["peak_rss_mib"],
    }
    print("large sampled", report["large_sampled"], flush=True)
    save()
    pilot = measure(
        f"""
        import numpy as np, jaxinfo
        x = np.load("{data}")
        def run():
            return jaxinfo.estimate_entropy(x, {H}, n_queries=1024, seed=1, control_rows=0)
        def summary(e):
            return [float(e.value), float(e.stderr), e.n_queries]
        """,
        repeats=0,
    )
    value, stderr, n = pilot["value"]
    spread = stderr * np.sqrt(n / (1 - n / args.n_large))
    needed = spread**2 / (args.target**2 + spread**2 / args.n_large)
    report["large_plain"] = {
        "n": args.n_large,
        "n_queries": n,
        "entropy": value,
        "stderr": stderr,
        "seconds": pilot["first_s"],
        "per_query_std_nats": spread,
        "queries_needed_for_target": needed,
        "projected_seconds_for_target": pilot["first_s"] * needed / n,
    }
    print("large plain", report["large_plain"], flush=True)
    save()


def dh_step(args, data, test, report, save) -> None:
    for mode in ("in_memory", "streamed"):
        call = (
            f'jaxinfo.delta_entropy(y, np.load("{data}"), {H})'
            if mode == "in_memory"
            else f'jaxinfo.delta_entropy_streamed(y, "{data}", {H}, block_rows=65536)'
        )
        row = measure(
            f"""
            import numpy as np, jaxinfo
            y = np.load("{test}")
            def run():
                return {call}
            def summary(d):
                np.save("{args.workdir}/dh_{mode}.npy", d)
                return [float(np.mean(d)), float(np.max(d))]
            """,
            repeats=0,
        )
        report[f"dh_{mode}"] = {
            "n_queries": args.n_test,
            "n_references": args.n_large,
            "seconds": row["first_s"],
            "peak_rss_mib": row["peak_rss_mib"],
            "baseline_rss_mib": row["baseline_rss_mib"],
            "kernel_evals_per_s": args.n_test * args.n_large / row["first_s"],
            "mean_dh": row["value"][0],
        }
        print(mode, report[f"dh_{mode}"], flush=True)
        save()
    a = np.load(f"{args.workdir}/dh_in_memory.npy")
    b = np.load(f"{args.workdir}/dh_streamed.npy")
    report["dh_streamed_vs_in_memory_max_abs"] = float(np.max(np.abs(a - b)))


def peer_step(args, data, test, report) -> None:
    try:
        peer = measure(
            f"""
            import numpy as np, jaxinfo
            from quests.entropy import approx_delta_entropy
            x = np.ascontiguousarray(np.load("{data}", mmap_mode="r")[:{args.n_peer}])
            y = np.load("{test}")
            exact = jaxinfo.delta_entropy(y, x, {H}).astype(np.float64)
            def run():
                return approx_delta_entropy(y.astype(np.float64), x.astype(np.float64), h={H})
            def summary(d):
                err = np.asarray(d, np.float64) - exact
                finite = np.isfinite(err)
                return {{"mean_error": float(np.mean(err[finite])),
                         "median_error": float(np.median(err[finite])),
                         "max_abs_error": float(np.max(np.abs(err[finite]))),
                         "fraction_infinite": float(1 - finite.mean()),
                         "mean_exact": float(exact.mean())}}
            """,
            repeats=0,
            timeout=900,
        )
        report["peer_approx"] = {
            "n_references": args.n_peer,
            "n_queries": args.n_test,
            "seconds": peer["first_s"],
            "peak_rss_mib": peer["peak_rss_mib"],
            **peer["value"],
        }
    except Exception as error:  # the peer is optional
        report["peer_approx"] = {"error": str(error)[-500:]}
    print("peer", report["peer_approx"], flush=True)


if __name__ == "__main__":
    main()
