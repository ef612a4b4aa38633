"""Entropy against random displacements of fcc, bcc and hcp Cu (paper SI, "Lindemann" plot).

EXACT in construction (no data needed; random displacements with fixed seeds). Supercells of the
paper's reference crystals (fcc a = 3.58 Å, bcc 2.84 Å, hcp 2.53 Å, primitive cells repeated
6 × 6 × 6: 216, 216 and 432 atoms, all with V ≈ 11.46 Å³/atom) are perturbed by random
spherical displacements and their entropy is computed at h = 0.057 1/Å, k = 32, cutoff 5 Å.

What the x axis is (stated plainly, because the authors' notebook was not available here):
every atom is moved by a vector of the SAME length δ in an independent, uniformly random
direction on the sphere (``rng.normal`` directions normalised to unit length, then times δ), so
the root-mean-square displacement is exactly δ. The x axis is the Lindemann-like ratio
δ / d_nn, with d_nn the crystal's nearest-neighbour distance (fcc 2.531 Å, bcc 2.459 Å,
hcp 2.530 Å), from 0 to 0.10 (the Lindemann melting criterion); δ in Å is in the JSON. Each
point is the mean over seeds (full: 3, quick: 1).

The paper: the three curves collapse onto one and reach ~0.9 nats at the largest displacement.

Usage: python papers_reproduction/lindemann.py --out DIR [--quick]
"""

from __future__ import annotations

import numpy as np
from _common import Figure, parse_args, pyplot
from ase.build import bulk, make_supercell
from ase.neighborlist import neighbor_list

import jaxinfo

H = 0.057
K, CUTOFF = 32, 5.0
LATTICE = {"fcc": 3.58, "bcc": 2.84, "hcp": 2.53}
PAPER_H_AT_MAX = 0.9
MAX_RATIO = 0.10


def supercell(kind: str, n: int):
    return make_supercell(bulk("Cu", kind, a=LATTICE[kind]), n * np.eye(3))


def nearest_neighbour_distance(atoms) -> float:
    return float(neighbor_list("d", atoms, 4.0).min())


def displaced(atoms, delta: float, rng: np.random.Generator):
    """Every atom moved by exactly ``delta`` Å in a uniformly random direction."""
    u = rng.normal(size=(len(atoms), 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    moved = atoms.copy()
    moved.positions += delta * u
    return moved


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("lindemann", args, kind="exact", panel="SI, entropy against displacement")
    n_cell = 4 if args.quick else 6
    ratios = np.linspace(0.0, MAX_RATIO, 6 if args.quick else 21)
    seeds = (0,) if args.quick else (0, 1, 2)

    curves = {}
    for kind in LATTICE:
        atoms = supercell(kind, n_cell)
        d_nn = nearest_neighbour_distance(atoms)
        values = np.zeros((len(seeds), len(ratios)))
        for s, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            for i, ratio in enumerate(ratios):
                x = jaxinfo.descriptors(displaced(atoms, ratio * d_nn, rng), k=K, cutoff=CUTOFF)
                values[s, i] = float(jaxinfo.entropy(x, h=H))
        curves[kind] = {
            "n_atoms": len(atoms),
            "atomic_volume_A3": atoms.get_volume() / len(atoms),
            "nearest_neighbour_A": d_nn,
            "delta_A": ratios * d_nn,
            "H_mean": values.mean(0),
            "H_std_over_seeds": values.std(0),
            "log_N": float(np.log(len(atoms))),
        }
    h_max = {kind: float(c["H_mean"][-1]) for kind, c in curves.items()}
    stack = np.array([c["H_mean"] for c in curves.values()])
    spread = stack.max(0) - stack.min(0)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for kind, c in curves.items():
        ax.errorbar(ratios, c["H_mean"], yerr=c["H_std_over_seeds"], fmt="o-", ms=3, label=kind)
    ax.axhline(PAPER_H_AT_MAX, c="k", ls=":", label="paper: ~0.9 nats at the largest δ")
    ax.set_xlabel("displacement δ / nearest-neighbour distance (dimensionless)")
    ax.set_ylabel(f"entropy H (nats), h = {H} 1/Å")
    ax.set_title("Cu crystals, every atom moved by δ in a random direction")
    ax.legend()
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "h": H,
            "k": K,
            "cutoff_A": CUTOFF,
            "lattice_A": LATTICE,
            "supercell": n_cell,
            "seeds": seeds,
            "x_axis": "delta / d_nn; every atom displaced by exactly delta in a uniformly "
            "random direction (RMS displacement = delta)",
        },
        ratios=ratios,
        curves=curves,
        H_at_largest_displacement={"paper": PAPER_H_AT_MAX, "ours": h_max},
        max_spread_between_crystals_nats=float(spread.max()),
        max_relative_spread_at_largest=float(spread[-1] / stack[:, -1].mean()),
        verdict="QUALITATIVE",
    )


if __name__ == "__main__":
    main()
