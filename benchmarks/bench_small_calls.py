"""Per-call overhead: dH of 1 and of 100 queries against 10,000 references, jaxinfo vs quests.

Both run in this process on the same float64 descriptors (rattled Cu); jaxinfo with a prepared
reference (``jaxinfo.prepare_reference``: validated, padded and on the device once) and with a
plain array (validated and padded on every call). Each timing is the median of repeated warm calls
(compilation and numba JIT excluded), so the numbers are the per-call cost a loop pays.

    python benchmarks/bench_small_calls.py [--references 10000] [--repeats 50]

Writes benchmarks/measured/bench_small_calls.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _harness import machine


def median_seconds(fn, repeats: int) -> float:
    fn()
    fn()  # warm: compilation / numba JIT
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "measured")
    args = parser.parse_args()

    from ase.build import bulk
    from quests.entropy import delta_entropy as quests_delta_entropy

    import jaxinfo

    rng = np.random.default_rng(0)
    frames = []
    while sum(len(f) for f in frames) < args.references + 100:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((5, 5, 5))
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        frames.append(atoms)
    x = np.asarray(jaxinfo.descriptors(frames), dtype=np.float64)
    reference, queries = x[: args.references], x[args.references :]
    h = 0.015
    prepared = jaxinfo.prepare_reference(reference)

    rows = []
    for m in (1, 100):
        y = queries[:m]
        peer = median_seconds(lambda y=y: quests_delta_entropy(y, reference, h=h), args.repeats)
        ours_prepared = median_seconds(
            lambda y=y: jaxinfo.delta_entropy(y, prepared, h), args.repeats
        )
        ours_plain = median_seconds(
            lambda y=y: jaxinfo.delta_entropy(y, reference, h), args.repeats
        )
        row = {
            "queries": m,
            "references": args.references,
            "quests_s": peer,
            "jaxinfo_prepared_s": ours_prepared,
            "jaxinfo_array_s": ours_plain,
            "prepared_over_quests": ours_prepared / peer,
            "array_over_quests": ours_plain / peer,
        }
        rows.append(row)
        print(
            f"dH of {m:>3} queries vs {args.references} refs: quests {peer * 1e3:7.3f} ms | "
            f"jaxinfo prepared {ours_prepared * 1e3:7.3f} ms ({row['prepared_over_quests']:.2f}x)"
            f" | jaxinfo array {ours_plain * 1e3:7.3f} ms ({row['array_over_quests']:.2f}x)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_small_calls.json"
    path.write_text(
        json.dumps({"machine": machine(), "dtype": str(x.dtype), "rows": rows}, indent=2)
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
