"""Estimator speed and memory: jaxinfo against the peer package quests, in one run.

* entropy H of N = 10k, 20k, 50k environments of real descriptors (rattled fcc Cu at several
  amplitudes, like thermal snapshots);
* dH of 10k test environments against 50k references;
* quests at its default batch size (20000) and at its fastest batch size (chosen by a sweep
  at N = 10k);
* jaxinfo in float32 and float64.

Reports time, peak RSS, and kernel evaluations per second (queries x references / time), and
the fraction of the matrix-multiply bound measured in the same run (float32 products of
1024 x 63 by 63 x 1024 blocks: one kernel evaluation per product entry), or given with
--bound. Then the gradient: time of d H / d positions over the time of H for a 2,000-atom
structure. Writes results/bench_estimators.json.

    python benchmarks/bench_estimators.py [--quick] [--skip-quests] [--gradient-only]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from _harness import machine, measure, write_json

BOUND_DEFAULT = 0.0  # 0: measure it


def matmul_bound(block: int = 1024, width: int = 63, repeats: int = 200) -> float:
    """Product entries per second of float32 (block, width) @ (width, block) on this machine."""
    import time

    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).normal(size=(repeats, block, width)), jnp.float32)
    b = a[0].T

    @jax.jit
    def products(stack):
        return jax.lax.map(lambda m: jnp.max(m @ b), stack)

    products(a).block_until_ready()
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        products(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return repeats * block * block / best


def make_descriptors(n: int, path: str) -> None:
    """Descriptors of rattled 108-atom fcc Cu cells, amplitudes 0.02-0.15 Angstrom."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from ase.build import bulk

    import jaxinfo

    cells = []
    for i in range(-(-n // 108)):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
        atoms.rattle(0.02 + 0.13 * (i % 10) / 9, seed=i)
        cells.append(atoms)
    x = jaxinfo.descriptors(cells)[:n]
    np.save(path, x)


JAXINFO = """
    {x64}
    import numpy as np, jax.numpy as jnp, jaxinfo
    x = jnp.asarray(np.load("{data}")[:{n}], dtype=jnp.{dtype})
    y = jnp.asarray(np.load("{data}")[:{m}], dtype=jnp.{dtype})
    def run():
        if {m} == 0:
            return jaxinfo.entropy(x, 0.015)  # numpy: already computed
        return jaxinfo.delta_entropy(y, x, 0.015)
    def summary(r):
        return float(np.mean(np.asarray(r)))
"""

QUESTS = """
    import warnings; warnings.simplefilter("ignore")
    import numpy as np
    from quests.entropy import perfect_entropy, delta_entropy
    x = np.load("{data}")[:{n}].astype(np.float64)
    y = np.load("{data}")[:{m}].astype(np.float64)
    perfect_entropy(x[:64], 0.015, batch_size=32)  # numba compilation outside the timing
    delta_entropy(x[:64], x[:64], 0.015, batch_size=32)
    def run():
        if {m} == 0:
            return perfect_entropy(x, 0.015, batch_size={batch})
        return delta_entropy(y, x, 0.015, batch_size={batch})
    def summary(r):
        return float(np.mean(r))
"""

GRADIENT = """
    {x64}
    import jax, jax.numpy as jnp, numpy as np, jaxinfo
    from ase.build import bulk
    from jaxinfo.descriptor import structure_descriptors
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((5, 5, 20))
    atoms.rattle(0.05, seed=0)
    table = jaxinfo.neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, 32, 5.0)
    positions = jnp.asarray(atoms.positions, dtype=jnp.{dtype})
    cell = jnp.asarray(atoms.cell.array, dtype=jnp.{dtype})
    def h_of_positions(p):
        return jaxinfo.entropy(structure_descriptors(p, cell, table), 0.015)
    f = jax.jit({fn})
    def run():
        return jax.block_until_ready(f(positions))
    def summary(r):
        return float(np.sum(np.abs(np.asarray(r))))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--skip-quests", action="store_true")
    parser.add_argument(
        "--gradient-only", action="store_true", help="only the gradient/value time ratio"
    )
    parser.add_argument("--bound", type=float, default=BOUND_DEFAULT)
    parser.add_argument("--output", default="results/bench_estimators.json")
    args = parser.parse_args()
    if args.bound <= 0:
        args.bound = matmul_bound()
        print(f"matrix-multiply bound (float32, d = 63): {args.bound / 1e9:.2f} G products/s")
    sizes = [1000, 2000] if args.quick else [10_000, 20_000, 50_000]
    dh_case = (500, 2000) if args.quick else (10_000, 50_000)
    sweep = [1000, 5000, 20000] if not args.quick else [250, 1000]
    x64 = 'import jax; jax.config.update("jax_enable_x64", True)'
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.gradient_only:
            sizes, dh_case = [], None
        data = os.path.join(tmp, "x.npy")
        if sizes:
            make_descriptors(max(*sizes, dh_case[1]), data)

        def report(label, r, evaluations):
            rate = evaluations / r["steady_s"]
            rows.append(
                {
                    "case": label,
                    **r,
                    "kernel_evals_per_s": rate,
                    "fraction_of_bound": rate / args.bound,
                }
            )
            print(
                f"  {label:38s} {r['steady_s']:8.2f} s (first {r['first_s']:6.2f} s)  "
                f"{rate / 1e9:6.3f} G evals/s ({100 * rate / args.bound:5.1f}% of bound)  "
                f"peak RSS {r['peak_rss_mib']:6.0f} MiB"
            )
            return r["steady_s"]

        fastest = 20000
        if sizes and not args.skip_quests:
            print(f"quests batch-size sweep at N = {sizes[0]}:")
            best = None
            for batch in sweep:
                r = measure(QUESTS.format(data=data, n=sizes[0], m=0, batch=batch), repeats=0)
                t = report(f"quests entropy N={sizes[0]} batch={batch}", r, sizes[0] ** 2)
                if best is None or t < best:
                    best, fastest = t, batch
            print(f"fastest quests batch size: {fastest}")

        cases = [(n, 0) for n in sizes] + ([(dh_case[1], dh_case[0])] if dh_case else [])
        for n, m in cases:
            name = f"entropy N={n}" if m == 0 else f"dH {m} vs {n}"
            evaluations = n * n if m == 0 else n * m
            print(name)
            times = {}
            for dtype in ("float32", "float64"):
                setup = JAXINFO.format(
                    x64=x64 if dtype == "float64" else "", data=data, n=n, m=m, dtype=dtype
                )
                times[dtype] = report(f"jaxinfo {dtype}", measure(setup, repeats=1), evaluations)
            if not args.skip_quests:
                for batch in sorted({20000, fastest}):
                    r = measure(QUESTS.format(data=data, n=n, m=m, batch=batch), repeats=0)
                    t = report(f"quests batch={batch}", r, evaluations)
                    if batch == fastest:
                        rows[-1]["speedup_jaxinfo_float32"] = t / times["float32"]
                        rows[-1]["speedup_jaxinfo_float64"] = t / times["float64"]
                        print(
                            "  jaxinfo speed-up over quests (fastest batch): "
                            f"float32 {t / times['float32']:.1f}x, "
                            f"float64 {t / times['float64']:.1f}x"
                        )

    print("gradient of H with respect to positions, 2,000-atom structure")
    for dtype in ("float32", "float64"):
        header = x64 if dtype == "float64" else ""
        # Best of 10: single calls take 0.02-0.3 s, so one slow call would decide otherwise.
        value, grad = (
            GRADIENT.format(x64=header, dtype=dtype, fn=fn)
            for fn in ("h_of_positions", "jax.grad(h_of_positions)")
        )
        forward, backward = measure(value, repeats=10), measure(grad, repeats=10)
        ratio = backward["steady_s"] / forward["steady_s"]
        rows.append(
            {"case": f"grad_over_value_{dtype}", "value": forward, "grad": backward, "ratio": ratio}
        )
        print(
            f"  {dtype}: H {forward['steady_s']:.3f} s, "
            f"dH/dpositions {backward['steady_s']:.3f} s, ratio {ratio:.2f}"
        )
    write_json(args.output, {"machine": machine(), "bound_evals_per_s": args.bound, "rows": rows})


if __name__ == "__main__":
    main()
