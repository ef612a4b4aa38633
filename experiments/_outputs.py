"""Command-line and output handling shared by the experiment scripts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def experiment_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the options every experiment takes: ``--out`` and ``--overwrite``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="output directory (default: experiments/results next to this script)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def output_paths(out: Path, name: str, overwrite: bool) -> tuple[Path, Path]:
    """``(name.json, name.png)`` under ``out``; exits non-zero if one exists, unless overwrite."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / f"{name}.json", out / f"{name}.png"
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        sys.exit(f"refusing to overwrite {', '.join(existing)} (use --overwrite)")
    return paths
