"""Carbon subsets (paper Fig. 2c and Fig. 3), a surrogate of GAP-20 built with ase.

SURROGATE (GAP-20 cannot be downloaded here). Each subset is a set of frames of one kind of
carbon structure, every frame rattled with Gaussian noise of 0.05 Å (seeded), descriptors with
k = 32, cutoff 5 Å, each lattice axis periodic only where the structure is:

* graphene (6 × 6 sheet, in-plane periodic), graphite (AB, a = 2.46 Å, c = 6.70 Å),
  diamond (a = 3.567 Å, 2 × 2 × 2 cubic), nanotubes ((6,6), (8,0), (10,10), (12,0), (16,16),
  (20,20), periodic along the axis), fullerenes (C20 dodecahedron and C60), defects (graphene
  with 1-3 vacancies, diamond with 1-2 vacancies), surfaces (diamond (100) and (111) slabs),
  amorphous (64 random atoms at 2.0 g/cm³ with a 1.3 Å minimum distance; "strong disorder").

Shown: H (h = 0.015 1/Å) of each subset beside log n of its environment count (Fig. 2c); the
δH histograms of nanotubes given graphene and of graphene given nanotubes (the asymmetry of
Fig. 3: large nanotubes contain graphene-like environments, graphene lacks curvature); the
overlap matrix, the fraction of subset Y's environments with δH(y | X) < 1 nat (Fig. 3's
threshold).

Usage: python papers_reproduction/carbon_subsets.py --out DIR [--quick]
"""

from __future__ import annotations

import numpy as np
from _common import Figure, parse_args, pyplot
from ase import Atoms
from ase.build import bulk, diamond100, diamond111, graphene, molecule, nanotube
from ase.lattice.hexagonal import Graphite

import jaxinfo

H = 0.015
K, CUTOFF = 32, 5.0
RATTLE = 0.05
OVERLAP_THRESHOLD = 1.0  # nats
TUBES = ((6, 6), (8, 0), (10, 10), (12, 0), (16, 16), (20, 20))


def c20() -> Atoms:
    """Dodecahedral C20 with 1.44 Å bonds."""
    phi = (1 + 5**0.5) / 2
    v = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    for a in (-1, 1):
        for b in (-1, 1):
            v += [(0, a / phi, b * phi), (a / phi, b * phi, 0), (a * phi, 0, b / phi)]
    pos = np.array(v, float) * 1.44 / (2 / phi)
    return Atoms("C20", positions=pos)


def amorphous(seed: int, n: int = 64, density: float = 2.0) -> Atoms:
    """Random sequential placement with a 1.3 Å minimum distance in a periodic cube."""
    rng = np.random.default_rng(seed)
    length = (n * 12.011 / 0.6022 / density) ** (1 / 3)
    pos: list[np.ndarray] = []
    while len(pos) < n:
        trial = rng.uniform(0, length, 3)
        if pos:
            d = np.array(pos) - trial
            d -= length * np.round(d / length)
            if np.min(np.linalg.norm(d, axis=1)) < 1.3:
                continue
        pos.append(trial)
    return Atoms(f"C{n}", positions=pos, cell=[length] * 3, pbc=True)


def remove(atoms: Atoms, count: int, seed: int) -> Atoms:
    out = atoms.copy()
    del out[sorted(np.random.default_rng(seed).choice(len(out), count, replace=False))[::-1]]
    return out


def templates() -> dict[str, list[Atoms]]:
    sheet = graphene(a=2.46, size=(6, 6, 1), vacuum=8.0)
    diamond = bulk("C", "diamond", a=3.567, cubic=True).repeat(2)
    return {
        "graphene": [sheet],
        "graphite": [Graphite("C", latticeconstant={"a": 2.46, "c": 6.70}, size=(4, 4, 1))],
        "diamond": [diamond],
        "nanotubes": [nanotube(n, m, length=3 if m else 2, bond=1.42) for n, m in TUBES],
        "fullerenes": [c20(), molecule("C60")],
        "defects": [remove(sheet, c, c) for c in (1, 2, 3)]
        + [remove(diamond, c, c) for c in (1, 2)],
        "surfaces": [
            diamond100("C", size=(3, 3, 6), a=3.567, vacuum=8.0),
            diamond111("C", size=(3, 3, 6), a=3.567, vacuum=8.0),
        ],
        "amorphous": [amorphous(seed) for seed in range(3)],
    }


def subset_frames(structures: list[Atoms], n_frames: int, seed: int) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_frames):
        atoms = structures[i % len(structures)].copy()
        atoms.positions += rng.normal(scale=RATTLE, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("carbon_subsets", args, kind="surrogate", panel="Fig. 2c and Fig. 3 (GAP-20)")
    n_frames = 4 if args.quick else 24
    desc = {}
    for i, (name, structures) in enumerate(templates().items()):
        frames = subset_frames(structures, max(n_frames, len(structures)), seed=i)
        desc[name] = np.asarray(jaxinfo.descriptors(frames, k=K, cutoff=CUTOFF))
    names = list(desc)
    entropy = {n: float(jaxinfo.entropy(x, h=H)) for n, x in desc.items()}
    log_n = {n: float(np.log(len(x))) for n, x in desc.items()}
    overlap = np.array(
        [
            [float(jaxinfo.overlap(desc[y], desc[x], h=H, eps=OVERLAP_THRESHOLD)) for x in names]
            for y in names
        ]
    )  # overlap[i, j]: fraction of subset i covered by subset j
    dh_tubes_given_graphene = np.asarray(
        jaxinfo.delta_entropy(desc["nanotubes"], desc["graphene"], h=H)
    )
    dh_graphene_given_tubes = np.asarray(
        jaxinfo.delta_entropy(desc["graphene"], desc["nanotubes"], h=H)
    )
    graphene_covered = float(np.mean(dh_graphene_given_tubes < OVERLAP_THRESHOLD))
    tubes_covered = float(np.mean(dh_tubes_given_graphene < OVERLAP_THRESHOLD))

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [entropy[n] for n in names], 0.4, label="H (h = 0.015 1/Å)")
    ax.bar(pos + 0.2, [log_n[n] for n in names], 0.4, color="lightgray", label="log n")
    ax.set_xticks(pos, names, rotation=45, ha="right")
    ax.set_ylabel("nats")
    ax.set_title("entropy of each subset vs log(number of environments)")
    ax.legend()
    ax = axes[1]
    bins = np.linspace(
        min(dh_tubes_given_graphene.min(), dh_graphene_given_tubes.min()),
        min(max(dh_tubes_given_graphene.max(), dh_graphene_given_tubes.max()), 60.0),
        60,
    )
    ax.hist(
        np.clip(dh_tubes_given_graphene, None, bins[-1]),
        bins,
        alpha=0.6,
        label="nanotubes | graphene",
        density=True,
    )
    ax.hist(
        np.clip(dh_graphene_given_tubes, None, bins[-1]),
        bins,
        alpha=0.6,
        label="graphene | nanotubes",
        density=True,
    )
    ax.axvline(OVERLAP_THRESHOLD, c="k", ls=":", lw=1)
    ax.set_xlabel("δH (nats; clipped at the right edge)")
    ax.set_ylabel("density (1/nat)")
    ax.set_title(
        f"graphene covered {100 * graphene_covered:.0f} %, nanotubes {100 * tubes_covered:.0f} %"
    )
    ax.legend()
    ax = axes[2]
    im = ax.imshow(overlap, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(pos, names, rotation=45, ha="right")
    ax.set_yticks(pos, names)
    ax.set_xlabel("reference subset X")
    ax.set_ylabel("covered subset Y")
    ax.set_title(f"overlap: fraction of Y with δH(y | X) < {OVERLAP_THRESHOLD} nat")
    fig.colorbar(im, ax=ax, label="overlap (fraction)")
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "h": H,
            "k": K,
            "cutoff_A": CUTOFF,
            "rattle_A": RATTLE,
            "frames_per_subset": n_frames,
            "overlap_threshold_nats": OVERLAP_THRESHOLD,
            "nanotubes": TUBES,
        },
        subsets={
            n: {"n_environments": len(desc[n]), "H": entropy[n], "log_n": log_n[n]} for n in names
        },
        overlap={"rows_covered_subset_Y": names, "columns_reference_X": names, "matrix": overlap},
        graphene_covered_by_nanotubes=graphene_covered,
        nanotubes_covered_by_graphene=tubes_covered,
        delta_entropy_quantiles={
            "nanotubes_given_graphene": np.quantile(dh_tubes_given_graphene, [0.05, 0.5, 0.95]),
            "graphene_given_nanotubes": np.quantile(dh_graphene_given_tubes, [0.05, 0.5, 0.95]),
        },
        paper_claim="graphene is (almost) fully covered by nanotubes, not the reverse; H of "
        "subsets is far below log n for crystals and close to it for amorphous carbon",
        verdict="QUALITATIVE",
    )


if __name__ == "__main__":
    main()
