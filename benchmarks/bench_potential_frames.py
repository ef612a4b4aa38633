"""Energy and forces of every bundled frame with a pure-JAX potential: wall time and compilations.

``jaxinfo.potentials.energy_and_forces`` on the 84 bundled Cu frames (32, 64 and 108 atoms) with
Sutton–Chen, one call per frame as a script scoring generated structures would make. The neighbour
list's candidate capacity is rounded up to a size bucket, so frames of one size share compiled
code; the script reports how many programs were compiled and the distinct capacities. The peer
package has no potentials, so there is no peer column.

    python benchmarks/bench_potential_frames.py

Writes benchmarks/measured/bench_potential_frames.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _harness import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "measured")
    args = parser.parse_args()

    from jaxinfo import potentials
    from jaxinfo.datasets import load_example

    frames = load_example()
    potential = potentials.SuttonChen()
    fns = potential.neighbour_list()
    capacities = sorted(
        {fns.allocate(f.positions, f.cell.array, f.pbc).candidates.k for f in frames}
    )
    start = time.perf_counter()
    for frame in frames:
        potentials.energy_and_forces(potential, frame)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for frame in frames:
        potentials.energy_and_forces(potential, frame)
    warm = time.perf_counter() - start
    compiled = potentials._compiled_energy_and_forces(potential)._cache_size()
    row = {
        "frames": len(frames),
        "atom_counts": sorted({len(f) for f in frames}),
        "candidate_capacities": capacities,
        "compiled_programs": compiled,
        "first_pass_s": first,
        "warm_pass_s": warm,
    }
    print(json.dumps(row, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_potential_frames.json"
    path.write_text(json.dumps({"machine": machine(), "result": row}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
