"""Bandwidth rule (paper SI): h(V) against the atomic volume V.

EXACT reproduction, no data needed. The paper fits the bandwidth that makes entropies of
systems at different densities comparable with a Gaussian in V (and an alternative with the
cutoff function in (ln V)²); it quotes h ≈ 0.093 1/Å at V = 5 Å³/atom, ≈ 0.063 at 11.5 and
0.012 at 40. The curves come from ``jaxinfo.bandwidth_from_volume``; the peer's
``quests.entropy.get_bandwidth`` is evaluated beside them when installed.

Usage: python papers_reproduction/bandwidth_rule.py --out DIR [--quick]
"""

from __future__ import annotations

import numpy as np
from _common import Figure, parse_args, pyplot

import jaxinfo

PAPER_POINTS = [(5.0, 0.093), (11.5, 0.063), (40.0, 0.012)]
TOLERANCE = 1e-3  # the paper quotes two significant digits


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("bandwidth_rule", args, kind="exact", panel="SI, bandwidth against volume")
    volumes = np.linspace(2.0, 60.0, 59 if args.quick else 581)
    curves = {m: jaxinfo.bandwidth_from_volume(volumes, m) for m in ("gaussian", "cutoff")}
    try:
        from quests.entropy import get_bandwidth
    except ImportError:
        get_bandwidth = None

    points = []
    for v, h_paper in PAPER_POINTS:
        row = {
            "volume_A3": v,
            "h_paper": h_paper,
            "h_gaussian": jaxinfo.bandwidth_from_volume(v, "gaussian"),
            "h_cutoff": jaxinfo.bandwidth_from_volume(v, "cutoff"),
        }
        row["deviation_gaussian"] = row["h_gaussian"] - h_paper
        if get_bandwidth is not None:
            row["h_peer_gaussian"] = float(get_bandwidth(v, "gaussian"))
        points.append(row)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(volumes, curves["gaussian"], label="Gaussian fit (default)")
    ax.plot(volumes, curves["cutoff"], "--", label="cutoff-function fit")
    ax.plot(*zip(*PAPER_POINTS, strict=True), "kx", ms=9, label="paper's values")
    ax.set_xlabel("atomic volume V (Å³/atom)")
    ax.set_ylabel("bandwidth h (1/Å)")
    ax.legend()
    fig.tight_layout()
    exact = all(abs(p["deviation_gaussian"]) <= TOLERANCE for p in points)
    out.save(
        fig,
        parameters={"volumes_A3": [float(volumes[0]), float(volumes[-1]), len(volumes)]},
        paper_points=points,
        curve={"volume_A3": volumes, **curves},
        verdict="EXACT" if exact else "DEVIATES",
    )


if __name__ == "__main__":
    main()
