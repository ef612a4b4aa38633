"""Descriptor speed and memory: jaxinfo against the peer package quests, in one run.

Cases: (a) one 10,000-atom rattled fcc Cu cell; (b) 1,000 random 32-atom cells (strained,
rattled fcc Cu); (c) one 100,000-atom cell, for memory (peak RSS should grow about linearly
from (a); one repeat after the first call). Each (tool, case) runs in a fresh process:
first-call time (includes JIT compilation), best steady-state time over repeats, and peak
RSS. Prints the ratio quests / jaxinfo and writes results/bench_descriptors.json.

    python benchmarks/bench_descriptors.py [--dtype float32|float64] [--quick]
"""

from __future__ import annotations

import argparse

from _harness import machine, measure, write_json

CASES = {
    "a_10k_atom_cell": """
        import numpy as np
        from ase.build import bulk
        def build():
            atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((10, 10, {n_z}))
            atoms.rattle(0.05, seed=0)
            return [atoms]
    """,
    "b_1000_random_32_atom_cells": """
        import numpy as np
        from ase.build import bulk
        def build():
            rng = np.random.default_rng(0)
            out = []
            for i in range({n_cells}):
                atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
                strain = np.eye(3) + rng.uniform(-0.1, 0.1, size=(3, 3))
                atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
                atoms.rattle(0.1, seed=i)
                out.append(atoms)
            return out
    """,
    "c_100k_atom_cell": """
        import numpy as np
        from ase.build import bulk
        def build():
            atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((25, 25, {n_z_large}))
            atoms.rattle(0.05, seed=0)
            return [atoms]
    """,
}

TOOLS = {
    "jaxinfo": """
        {x64}
        import jaxinfo
        structures = build()
        def run():
            return jaxinfo.descriptors(structures, k=32, cutoff=5.0)
        def summary(x):
            return [list(x.shape), str(x.dtype), float(x.sum())]
    """,
    "quests": """
        import warnings; warnings.simplefilter("ignore")
        from quests.descriptor import get_descriptors
        structures = build()
        def run():
            return get_descriptors(structures, k=32, cutoff=5.0, dtype="{dtype}")
        def summary(x):
            return [list(x.shape), str(x.dtype), float(x.sum())]
    """,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--quick", action="store_true", help="smaller cases (smoke test)")
    parser.add_argument("--output", default="results/bench_descriptors.json")
    args = parser.parse_args()
    sizes = {
        "n_z": 2 if args.quick else 25,
        "n_z_large": 4 if args.quick else 40,
        "n_cells": 20 if args.quick else 1000,
    }
    repeats = {"c_100k_atom_cell": 1}
    x64 = 'import jax; jax.config.update("jax_enable_x64", True)' if args.dtype == "float64" else ""
    rows = []
    for case, builder in CASES.items():
        results = {}
        for tool, body in TOOLS.items():
            setup = builder.format(**sizes) + body.format(x64=x64, dtype=args.dtype)
            results[tool] = measure(setup, repeats=repeats.get(case, 2))
        ratio = results["quests"]["steady_s"] / results["jaxinfo"]["steady_s"]
        rows.append(
            {"case": case, "dtype": args.dtype, **results, "ratio_quests_over_jaxinfo": ratio}
        )
        print(f"\n{case} ({args.dtype})")
        for tool, r in results.items():
            print(
                f"  {tool:8s} first {r['first_s']:7.2f} s  steady {r['steady_s']:7.3f} s  "
                f"peak RSS {r['peak_rss_mib']:7.0f} MiB "
                f"(before first call {r['baseline_rss_mib']:.0f})"
            )
        print(f"  ratio quests/jaxinfo (steady): {ratio:.2f}")
    write_json(args.output, {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
