"""Runs every figure script of papers_reproduction/ in turn and prints a runtime table.

Usage: python papers_reproduction/run_all.py --out DIR [--quick] [--only NAME ...]

Each script runs in its own Python process (as a user runs it), writing DIR/<name>.json and
DIR/<name>.png; the exit status is non-zero if any script failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = (
    "toy_2d",
    "descriptor_shells",
    "bandwidth_rule",
    "lindemann",
    "learning_curves",
    "carbon_subsets",
    "compression_gap",
    "uncertainty",
    "extrapolation",
    "thermodynamics",
    "rare_events",
    "outliers_at_scale",
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (CI)")
    parser.add_argument("--only", nargs="+", choices=FIGURES, help="run only these figures")
    args = parser.parse_args(argv)
    failed, rows = [], []
    for name in args.only or FIGURES:
        command = [sys.executable, str(HERE / f"{name}.py"), "--out", str(args.out)]
        if args.quick:
            command.append("--quick")
        start = time.perf_counter()
        code = subprocess.run(command, check=False).returncode
        rows.append((name, time.perf_counter() - start, code))
        if code:
            failed.append(name)
    print(f"\n{'figure':<20} {'seconds':>8}  status")
    for name, seconds, code in rows:
        print(f"{name:<20} {seconds:8.1f}  {'ok' if code == 0 else f'FAILED ({code})'}")
    print(f"{'total':<20} {sum(r[1] for r in rows):8.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
