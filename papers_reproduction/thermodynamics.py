"""Entropy against temperature through melting (paper SI), surrogate with a Sutton-Chen Cu model.

SURROGATE (the paper uses its own Cu/metal trajectories). 108-atom Cu cells with the Sutton-Chen
EAM of ``jaxinfo.potentials`` (a fixed-cell model: there is no barostat in jaxinfo's MD), run
with Langevin MD (``jaxinfo.biased_md.run_md``, 1 fs, friction 0.01 1/fs) at temperatures from
100 K upwards. The cell follows a prescribed volume: the lattice constant grows with the
experimental linear thermal expansion of Cu (α ≈ 1.7e-5 1/K from a = 3.61 Å at 300 K) and, for
the liquid branch, the volume grows by a further 4.2 % (Cu's volume change on melting). Two
branches: "heating" starts every temperature from the crystal, "cooling" from a liquid
prepared at 3000 K, so the fixed-volume superheating/supercooling hysteresis is visible.

H (environments of the recorded frames) is evaluated at a fixed h = 0.015 1/Å and at the
volume-dependent h(V) of ``jaxinfo.bandwidth_from_volume`` (Gaussian fit).

Usage: python papers_reproduction/thermodynamics.py --out DIR [--quick]
"""

from __future__ import annotations

import numpy as np
from _common import Figure, parse_args, pyplot
from ase.build import bulk

import jaxinfo
from jaxinfo.biased_md import run_md
from jaxinfo.potentials import SuttonChen

H_FIXED = 0.015
A300, ALPHA, MELT_VOLUME_JUMP = 3.61, 1.7e-5, 0.042
EVERY = 100


def lattice(temperature: float, liquid: bool) -> float:
    a = A300 * (1.0 + ALPHA * (temperature - 300.0))
    return a * (1.0 + MELT_VOLUME_JUMP) ** (1 / 3) if liquid else a


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("thermodynamics", args, kind="surrogate", panel="SI, H(T) through melting")
    temperatures = (
        np.array([300.0, 900.0, 1500.0, 2100.0]) if args.quick else np.arange(100.0, 2301.0, 200.0)
    )
    n_steps = 1000 if args.quick else 3000
    skip = 5 if args.quick else 10
    potential = SuttonChen()
    liquid_seed = None
    rows = {"heating": [], "cooling": []}
    for branch in ("heating", "cooling"):
        liquid = branch == "cooling"
        for i, t in enumerate(temperatures):
            a = lattice(t, liquid)
            atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(3)
            if liquid:
                if liquid_seed is None:
                    liquid_seed = run_md(
                        atoms,
                        potential,
                        n_steps=n_steps,
                        timestep=1.0,
                        temperature=3000.0,
                        friction=0.01,
                        record_every=n_steps,
                        seed=123,
                    ).frames[-1]
                atoms.positions = liquid_seed.get_scaled_positions() @ atoms.cell.array
            frames = run_md(
                atoms,
                potential,
                n_steps=n_steps,
                timestep=1.0,
                temperature=t,
                friction=0.01,
                record_every=EVERY,
                seed=i + (100 if liquid else 0),
            ).frames[skip:]
            x = np.asarray(jaxinfo.descriptors(frames))
            volume = frames[0].get_volume() / len(frames[0])
            h_v = jaxinfo.bandwidth_from_volume(volume)
            disp = frames[-1].positions - frames[0].positions
            rows[branch].append(
                {
                    "temperature_K": float(t),
                    "lattice_A": a,
                    "atomic_volume_A3": volume,
                    "h_of_V": h_v,
                    "H_fixed_h": float(jaxinfo.entropy(x, h=H_FIXED)),
                    "H_h_of_V": float(jaxinfo.entropy(x, h=h_v)),
                    "msd_A2": float(np.mean(np.sum(disp**2, axis=1))),
                    "n_environments": len(x),
                }
            )
            print(f"{branch} {t:.0f} K: H = {rows[branch][-1]['H_fixed_h']:.3f}", flush=True)

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for branch, style in (("heating", "o-"), ("cooling", "s--")):
        t = [r["temperature_K"] for r in rows[branch]]
        axes[0].plot(t, [r["H_fixed_h"] for r in rows[branch]], style, label=branch)
        axes[1].plot(t, [r["H_h_of_V"] for r in rows[branch]], style, label=branch)
        axes[2].plot(t, [r["msd_A2"] for r in rows[branch]], style, label=branch)
    axes[0].set_ylabel(f"H (nats), fixed h = {H_FIXED} 1/Å")
    axes[1].set_ylabel("H (nats), h = h(V)")
    axes[2].set_ylabel("mean-squared displacement over the run (Å²)")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("temperature (K)")
        ax.legend()
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "potential": "Sutton-Chen Cu (jaxinfo.potentials.SuttonChen defaults)",
            "n_atoms": 108,
            "n_steps": n_steps,
            "record_every": EVERY,
            "frames_dropped": skip,
            "h_fixed": H_FIXED,
            "a_300K_A": A300,
            "alpha_per_K": ALPHA,
            "melt_volume_jump": MELT_VOLUME_JUMP,
        },
        branches=rows,
        paper_claim="H rises smoothly with T in the solid and jumps at melting; with h(V) the "
        "values of different densities become comparable",
        verdict="QUALITATIVE",
    )


if __name__ == "__main__":
    main()
