"""Command line, JSON and plotting helpers shared by the figure scripts.

Every script is run as ``python papers_reproduction/<name>.py --out DIR [--quick]`` and writes
``DIR/<name>.json`` (numbers, parameters, the paper's values beside ours) and ``DIR/<name>.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

PAPER = (
    "Schwalbe-Koda, Hamel, Sadigh, Zhou, Lordi, 'Model-free estimation of completeness, "
    "uncertainties, and outliers in atomistic machine learning using information theory', "
    "Nat. Commun. 16, 4014 (2025)"
)


def parse_args(doc: str, argv=None) -> argparse.Namespace:
    """``--out DIR`` (required) and ``--quick`` (reduced size for CI)."""
    parser = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--quick", action="store_true", help="reduced size (CI, < ~1 min)")
    return parser.parse_args(argv)


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend and a small, readable style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "legend.fontsize": 7})
    return plt


def _plain(obj):
    """JSON-ready copy: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class Figure:
    """Collects a script's results and writes ``<name>.json`` and ``<name>.png`` under ``out``."""

    def __init__(self, name: str, args: argparse.Namespace, kind: str, panel: str):
        self.name = name
        self.out = Path(args.out)
        self.quick = bool(args.quick)
        self.start = time.perf_counter()
        self.report = {
            "figure": name,
            "paper": PAPER,
            "panel": panel,
            "kind": kind,  # "exact" (no data needed) or "surrogate" (data generated here)
            "quick": self.quick,
        }

    def save(self, fig, **results) -> None:
        """Writes the PNG (dpi 100) and the JSON (results + runtime and environment)."""
        import jax

        self.out.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.out / f"{self.name}.png", dpi=100, bbox_inches="tight")
        self.report.update(results)
        self.report["runtime_s"] = round(time.perf_counter() - self.start, 2)
        self.report["environment"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "x64": bool(jax.config.jax_enable_x64),
        }
        path = self.out / f"{self.name}.json"
        path.write_text(json.dumps(_plain(self.report), indent=1) + "\n")
        print(f"wrote {path} and {self.out / (self.name + '.png')} in {self.report['runtime_s']} s")
