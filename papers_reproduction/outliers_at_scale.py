"""Outliers in a large heterogeneous cell (paper Fig. 6), exact δH against the peer's approximation.

SURROGATE (the paper's large-scale Cu/Ta simulations are not available). One fcc Cu cell
(a = 3.61 Å, 30 × 30 × 30 cubic cells: 108,000 sites; quick: 10 × 10 × 10) with every atom
rattled by 0.05 Å and, in separate regions: a free surface pair (a 12 Å vacuum gap along z;
"surface" = the outer two (001) layers), three spherical voids (radius 6 Å; quick: 4 Å),
0.2 % random vacancies, a twisted grain (the slab 0.55 L < z < 0.75 L rotated by 15° about z)
and a "molten pocket" (a sphere of radius 12 Å, quick 6 Å, whose atoms get 0.6 Å Gaussian
displacements); then of every pair closer than 1.9 Å one atom is removed. Reference: 100
(quick: 20) frames of a rattled (0.05 Å) 4 × 4 × 4 bulk cell. δH of every atom given the
reference at h = 0.015 1/Å:

* exact with jaxinfo (blocked log-sum-exp over all reference environments), timed;
* the peer's ``quests.entropy.approx_delta_entropy`` (n = 3 approximate nearest neighbours with
  pynndescent), which sums fewer kernel terms and so must be an upper bound of the exact δH
  (on 5,000 random atoms of the cell, because indexing and compiling take minutes; skipped in
  quick mode; +inf where all three terms underflow).

Shown: the δH distribution (histogram and CDF, exact and approximate) and the median δH of each
region.

Usage: python papers_reproduction/outliers_at_scale.py --out DIR [--quick]
"""

from __future__ import annotations

import time

import numpy as np
from _common import Figure, parse_args, pyplot
from ase.build import bulk

import jaxinfo

H = 0.015
A = 3.61
RATTLE = 0.05
PEER_SAMPLE = 5000
INF_AT = 1e4


def remove_close(positions, labels, cell, min_distance):
    """Drops the later atom of every pair closer than ``min_distance`` (periodic)."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    atoms = Atoms("Cu" * 0 + f"Cu{len(positions)}", positions=positions, cell=cell, pbc=True)
    i, j = neighbor_list("ij", atoms, min_distance)
    drop = np.unique(np.maximum(i, j))
    keep = np.setdiff1d(np.arange(len(positions)), drop)
    return positions[keep], labels[keep]


def build(n: int, rng: np.random.Generator):
    atoms = bulk("Cu", "fcc", a=A, cubic=True).repeat(n)
    cell = atoms.cell.array.copy()
    pos = atoms.positions + rng.normal(scale=RATTLE, size=atoms.positions.shape)
    labels = np.array(["bulk"] * len(pos), dtype=object)
    length = cell[0, 0]
    center = np.full(3, length / 2)
    void_r = 6.0 if n >= 20 else 4.0
    pocket_r = 12.0 if n >= 20 else 6.0
    # twisted grain: the slab 0.55 L < z < 0.75 L rotated by 15 degrees about z
    slab = (pos[:, 2] > 0.55 * length) & (pos[:, 2] < 0.75 * length)
    angle = np.deg2rad(15.0)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    pos[slab] = ((pos[slab] - center) @ rot.T + center) % np.array([length, length, np.inf])
    labels[slab] = "grain"
    # molten pocket
    pocket_center = np.array([0.25, 0.25, 0.3]) * length
    pocket = np.linalg.norm(pos - pocket_center, axis=1) < pocket_r
    pos[pocket] += rng.normal(scale=0.6, size=(pocket.sum(), 3))
    labels[pocket] = "molten pocket"
    pos, labels = remove_close(pos, labels, cell, 1.9)
    # voids
    for c in (
        np.array([0.75, 0.25, 0.3]),
        np.array([0.25, 0.75, 0.3]),
        np.array([0.75, 0.75, 0.3]),
    ):
        keep = np.linalg.norm(pos - c * length, axis=1) >= void_r
        shell = (np.linalg.norm(pos - c * length, axis=1) < void_r + 2.6) & keep
        labels[shell & (labels == "bulk")] = "void surface"
        pos, labels = pos[keep], labels[keep]
    # vacancies
    keep = np.ones(len(pos), bool)
    keep[rng.choice(len(pos), int(0.002 * len(pos)), replace=False)] = False
    pos, labels = pos[keep], labels[keep]
    # free surfaces: a vacuum gap along z
    cell[2, 2] += 12.0
    near_surface = (pos[:, 2] < 2.5) | (pos[:, 2] > length - 2.5)  # the outer two (001) layers
    labels[near_surface & (labels == "bulk")] = "surface"
    from ase import Atoms

    return Atoms(f"Cu{len(pos)}", positions=pos, cell=cell, pbc=True), labels


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("outliers_at_scale", args, kind="surrogate", panel="Fig. 6 (outliers at scale)")
    rng = np.random.default_rng(0)
    n = 10 if args.quick else 30
    big, labels = build(n, rng)
    ref_frames = []
    for _ in range(20 if args.quick else 100):
        frame = bulk("Cu", "fcc", a=A, cubic=True).repeat(4)
        frame.positions += rng.normal(scale=RATTLE, size=frame.positions.shape)
        ref_frames.append(frame)
    t0 = time.perf_counter()
    y = np.asarray(jaxinfo.descriptors(big))
    t_desc = time.perf_counter() - t0
    x = np.asarray(jaxinfo.descriptors(ref_frames))
    jaxinfo.delta_entropy(y[:10], x, h=H)  # compile
    t0 = time.perf_counter()
    dh = np.asarray(jaxinfo.delta_entropy(y, x, h=H), dtype=np.float64)
    t_exact = time.perf_counter() - t0
    approx, t_approx, sub = None, None, None
    try:
        from quests.entropy import approx_delta_entropy
    except ImportError:
        approx_delta_entropy = None
    if approx_delta_entropy is not None and not args.quick:
        # the peer (pynndescent + numba, minutes to compile and index) on a random subsample
        sub = np.sort(rng.choice(len(y), min(PEER_SAMPLE, len(y)), replace=False))
        t0 = time.perf_counter()
        approx = np.asarray(
            approx_delta_entropy(y[sub].astype(np.float64), x.astype(np.float64), h=H)
        )
        t_approx = time.perf_counter() - t0

    regions = {}
    for label in dict.fromkeys(labels):
        m = labels == label
        regions[label] = {
            "n_atoms": int(m.sum()),
            "median_dH": float(np.median(dh[m])),
            "fraction_dH_above_0": float(np.mean(dh[m] > 0)),
        }
    threshold = 0.0
    outliers = dh > threshold
    report = {
        "n_atoms": len(big),
        "n_reference_environments": len(x),
        "timing_s": {
            "descriptors": t_desc,
            "exact_delta_entropy": t_exact,
            "peer_approx": t_approx,
        },
        "dH_quantiles_exact": dict(
            zip(
                ["1%", "50%", "90%", "99%", "max"],
                np.quantile(dh, [0.01, 0.5, 0.9, 0.99, 1.0]).tolist(),
                strict=True,
            )
        ),
        "fraction_outliers_dH_above_0": float(outliers.mean()),
        "outlier_regions": {k: int(np.sum(outliers & (labels == k))) for k in regions},
        "regions": regions,
    }
    if approx is not None:
        import jax

        finite = np.isfinite(approx)
        with jax.enable_x64(True):  # the bound is checked against float64 exact values
            exact = np.asarray(
                jaxinfo.delta_entropy(y[sub].astype(np.float64), x.astype(np.float64), h=H)
            )
        slack = 1e-6 * (1.0 + np.abs(exact[finite]))
        report["peer_approx"] = {
            "float32_vs_float64_exact_max_abs_nats": float(np.max(np.abs(dh[sub] - exact))),
            "n_queries": len(sub),
            "fraction_finite": float(finite.mean()),
            "upper_bound_violations": int(np.sum(approx[finite] < exact[finite] - slack)),
            "min_overestimate_nats": float(np.min(approx[finite] - exact[finite])),
            "max_overestimate_nats": float(np.max(approx[finite] - exact[finite])),
            "median_overestimate_nats": float(np.median(approx[finite] - exact[finite])),
        }

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    clip = 60.0
    bins = np.linspace(dh.min(), clip, 80)
    axes[0].hist(np.clip(dh, None, clip), bins, alpha=0.6, label="exact, all atoms")
    s = np.sort(dh)
    axes[1].plot(s, 1 - np.arange(len(s)) / len(s), label="exact, all atoms")
    if approx is not None:
        # same atoms for both; the peer's +inf values are drawn at INF_AT nats
        shown = np.where(np.isfinite(approx), approx, INF_AT)
        axes[0].hist(np.clip(dh[sub], None, clip), bins, alpha=0.6, label="exact, peer's sample")
        axes[0].hist(np.clip(shown, None, clip), bins, alpha=0.6, label="peer approx. (n = 3)")
        for values, style, label in (
            (dh[sub], "-", "exact, peer's sample"),
            (shown, "--", f"peer approx. (+inf drawn at {INF_AT:g})"),
        ):
            s = np.sort(values)
            axes[1].plot(s, 1 - np.arange(len(s)) / len(s), style, label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel(f"δH (nats, clipped at {clip:g})")
    axes[0].set_ylabel("atoms")
    axes[0].legend()
    axes[1].set_xscale("symlog")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("δH (nats)")
    axes[1].set_ylabel("fraction of atoms with larger δH")
    axes[1].legend()
    names = list(regions)
    axes[2].bar(names, [regions[k]["median_dH"] for k in names])
    axes[2].set_ylabel("median δH in the region (nats)")
    axes[2].tick_params(axis="x", rotation=30)
    axes[2].set_title(f"{len(big)} atoms; exact δH in {t_exact:.1f} s")
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "h": H,
            "a_A": A,
            "rattle_A": RATTLE,
            "cubic_cells_per_side": n,
            "reference_frames": 20 if args.quick else 100,
            "peer_sample": PEER_SAMPLE,
        },
        paper_claim="exact δH finds the surfaces, voids, grain boundary and molten pocket as "
        "outliers; the approximate δH of the peer is an upper bound",
        verdict="QUALITATIVE",
        **report,
    )


if __name__ == "__main__":
    main()
