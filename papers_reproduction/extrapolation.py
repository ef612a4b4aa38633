"""Extrapolation to hotter and molten configurations (paper Fig. 5 panel), surrogate.

SURROGATE (the paper uses DFT-level datasets of several metals). Three Cu potentials that ship
with jaxinfo (``jaxinfo.potentials``: Sutton-Chen EAM, Morse, Lennard-Jones) stand for three
"metals/potentials". For each, Langevin MD (``jaxinfo.biased_md.run_md``, 1 fs, friction
0.01 1/fs, 108-atom fcc cell at a = 3.61 Å, fixed cell) at fractions 0.25 ("cold"), 0.75
("warm") and 1.25 ("melt") of an APPROXIMATE melting point T_m of that potential (SC 1300 K,
Morse 2000 K, LJ 3000 K; rough literature-level values, not computed here). Phases are set by
the protocol rather than by T_m: cold and warm start from the crystal (a few ps cannot melt
a superheated crystal), melt starts from a configuration prepared at 3 T_m, and its mean-squared
displacement (in the JSON) shows it diffuses.

Student: kernel ridge regression (Gaussian kernel on the per-atom descriptor, length scale =
median distance between training environments, ridge 1e-4) predicting the per-atom force norm
(eV/Å), trained on the first half of the cold frames. Error increase = MAE on warm (or melt)
frames / MAE on the second half of the cold frames. Overlap = fraction of warm (melt)
environments with δH(x | cold) < 1e-5 at h = 0.015 1/Å. Pearson ρ between overlap and
log10(error increase) over 3 potentials × 2 conditions.

Usage: python papers_reproduction/extrapolation.py --out DIR [--quick]
"""

from __future__ import annotations

import numpy as np
from _common import Figure, parse_args, pyplot
from ase.build import bulk

import jaxinfo
from jaxinfo.biased_md import run_md
from jaxinfo.potentials import LennardJones, Morse, SuttonChen, energy_and_forces

H = 0.015
RIDGE = 1e-4
POTENTIALS = {
    "Sutton-Chen": (SuttonChen, 1300.0),
    "Morse": (Morse, 2000.0),
    "Lennard-Jones": (LennardJones, 3000.0),
}
FRACTIONS = {"cold": 0.25, "warm": 0.75, "melt": 1.25}


def trajectory(atoms, potential, temperature, n_steps, record_every, seed):
    result = run_md(
        atoms,
        potential,
        n_steps=n_steps,
        timestep=1.0,
        temperature=temperature,
        friction=0.01,
        record_every=record_every,
        seed=seed,
    )
    return result.frames


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("extrapolation", args, kind="surrogate", panel="Fig. 5 (extrapolation)")
    n_steps = 1000 if args.quick else 4000
    every = 100
    skip = 5 if args.quick else 10  # frames discarded as equilibration
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)

    results = {}
    for p, (name, (cls, t_melt)) in enumerate(POTENTIALS.items()):
        potential = cls()
        frames = {}
        for c, (cond, frac) in enumerate(FRACTIONS.items()):
            start = crystal
            if cond == "melt":
                start = trajectory(crystal, potential, 3.0 * t_melt, n_steps, n_steps, seed=99)[-1]
            traj = trajectory(start, potential, frac * t_melt, n_steps, every, seed=10 * p + c)
            frames[cond] = traj[skip:]
        data = {}
        for cond, traj in frames.items():
            x = np.asarray(jaxinfo.descriptors(traj), dtype=np.float64).reshape(
                len(traj), len(crystal), -1
            )
            y = np.array([np.linalg.norm(energy_and_forces(potential, a)[1], axis=1) for a in traj])
            disp = traj[-1].positions - traj[0].positions
            data[cond] = {"x": x, "y": y, "msd": float(np.mean(np.sum(disp**2, axis=1)))}
        cold = data["cold"]
        half = len(cold["x"]) // 2
        x_tr = cold["x"][:half].reshape(-1, cold["x"].shape[-1])
        y_tr = cold["y"][:half].ravel()
        d = np.sqrt(np.maximum(((x_tr[:, None] - x_tr[None]) ** 2).sum(-1), 0.0))
        length = float(np.median(d[np.triu_indices(len(x_tr), 1)]))

        def gram(a, b, length=length):
            d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
            return np.exp(-np.maximum(d2, 0.0) / (2.0 * length**2))

        mean = y_tr.mean()
        alpha = np.linalg.solve(gram(x_tr, x_tr) + RIDGE * np.eye(len(x_tr)), y_tr - mean)

        def mae(x, y, alpha=alpha, mean=mean, x_tr=x_tr):
            return float(np.mean(np.abs(gram(x, x_tr) @ alpha + mean - y)))

        x_cold = cold["x"].reshape(-1, cold["x"].shape[-1])
        base = mae(cold["x"][half:].reshape(-1, x_cold.shape[-1]), cold["y"][half:].ravel())
        entry = {
            "T_melt_assumed_K": t_melt,
            "cold_test_mae_eV_A": base,
            "cold_msd_A2": cold["msd"],
            "krr_length_scale": length,
        }
        for cond in ("warm", "melt"):
            x = data[cond]["x"].reshape(-1, x_cold.shape[-1])
            err = mae(x, data[cond]["y"].ravel())
            entry[cond] = {
                "temperature_K": FRACTIONS[cond] * t_melt,
                "overlap_with_cold": float(jaxinfo.overlap(x, x_cold, h=H)),
                "mae_eV_A": err,
                "error_increase": err / base,
                "msd_A2": data[cond]["msd"],
                "H": float(jaxinfo.entropy(x, h=H)),
            }
        entry["H_cold"] = float(jaxinfo.entropy(x_cold, h=H))
        results[name] = entry
        print(
            f"{name}: warm overlap {entry['warm']['overlap_with_cold']:.2f}, melt "
            f"{entry['melt']['overlap_with_cold']:.2f}",
            flush=True,
        )

    ov = np.array([r[c]["overlap_with_cold"] for r in results.values() for c in ("warm", "melt")])
    inc = np.array([r[c]["error_increase"] for r in results.values() for c in ("warm", "melt")])
    rho = float(np.corrcoef(ov, np.log10(inc))[0, 1])

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (name, r) in enumerate(results.items()):
        for cond, marker in (("warm", "o"), ("melt", "^")):
            ax.scatter(
                r[cond]["overlap_with_cold"],
                r[cond]["error_increase"],
                c=f"C{i}",
                marker=marker,
                label=f"{name}, {cond}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("overlap with the cold training set (fraction, δH < 1e-5)")
    ax.set_ylabel("student error increase (MAE / cold MAE)")
    ax.set_title(f"Pearson ρ(overlap, log error increase) = {rho:.2f}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "h": H,
            "ridge": RIDGE,
            "n_steps": n_steps,
            "record_every": every,
            "equilibration_frames_dropped": skip,
            "timestep_fs": 1.0,
            "friction_per_fs": 0.01,
            "n_atoms": len(crystal),
            "temperature_fractions": FRACTIONS,
        },
        potentials=results,
        pearson_overlap_vs_log_error_increase=rho,
        paper_claim="the lower the overlap with the cold training data, the larger the error "
        "increase (strong negative correlation across metals)",
        verdict="QUALITATIVE",
    )


if __name__ == "__main__":
    main()
