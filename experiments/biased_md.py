"""Biased MD experiment: does a δH bias reach configurations that plain MD does not visit?

System: a 32-atom fcc Cu cell (bundled ``bulk_300K`` frames 0, 1, 2 as starting points, one per
seed), Sutton–Chen potential, fixed cell, Langevin dynamics at T = 1300 K (4 fs, friction
0.02/fs), ``--steps`` steps (default 1000 = 4 ps). A perfect periodic 32-atom cell superheats:
at fixed volume it does not melt in this time without help (checked up to 1900 K, 8 ps).

Each seed runs twice with identical initial velocities and noise: unbiased, and with the
metadynamics-style bias of :mod:`jaxinfo.biased_md` (``kind="delta"``,
U = −strength · mean_i 10·tanh(δH_i/10) against the frames deposited every 50 steps).

"First reached a configuration the unbiased run does not visit", two detectors:

* melting: translational order ρ = mean over the three fcc (200) reciprocal vectors G of
  |(1/N) Σ_j exp(i G·r_j)| drops below 0.5 (about 0.85 in the hot crystal, ~0.2 in the liquid);
* novelty: mean δH(frame | all unbiased frames) exceeds the largest mean δH that any unbiased
  frame has against the unbiased frames of the *other* seeds, plus 1 nat.

Times are the first recorded frame (every 40 fs) meeting the criterion; runs that never meet it
are reported as censored at the run length. The bias does work on the system and heats it, so
the kinetic temperature is reported and a third arm, ``unbiased_hot``, runs plain MD at the
biased runs' mean kinetic temperature: if it does not melt either, heating alone does not
explain the melting.

Usage:
    python experiments/biased_md.py [--out experiments/results] [--overwrite] [--steps 1000]
        [--seeds 3] [--strength 2.0] [--temperature 1300]

Writes ``biased_md.json`` and ``biased_md.png`` under ``--out`` and refuses to overwrite them
unless ``--overwrite`` is given. About 3 minutes on 2 CPU cores (float32).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from _outputs import experiment_parser, output_paths

import jaxinfo
from jaxinfo.biased_md import DeltaEntropyBias, run_md
from jaxinfo.datasets import load_example
from jaxinfo.potentials import SuttonChen

TIMESTEP, FRICTION = 4.0, 0.02
RECORD_EVERY, DEPOSIT_EVERY = 10, 50
ORDER_THRESHOLD = 0.5
NOVELTY_MARGIN = 1.0  # nats
H = 0.015
NAMES = ("unbiased", "biased", "unbiased_hot")


def parse_args(argv=None):
    parser = experiment_parser(__doc__)
    parser.add_argument("--steps", type=int, default=1000, help="MD steps per run (1000)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (3)")
    parser.add_argument("--strength", type=float, default=2.0, help="bias, eV per nat (2.0)")
    parser.add_argument("--temperature", type=float, default=1300.0, help="T in K (1300)")
    return parser.parse_args(argv)


def translational_order(atoms) -> float:
    """|<exp(i G·r)>| averaged over the three (200) vectors of an n×n×n conventional fcc cell."""
    n = round((len(atoms) / 4) ** (1 / 3))
    reciprocal = np.linalg.inv(atoms.cell.array).T  # rows b_i with a_i · b_j = δ_ij
    g = 2.0 * np.pi * 2 * n * reciprocal
    phases = np.exp(1j * atoms.positions @ g.T)
    return float(np.mean(np.abs(phases.mean(axis=0))))


def first_time(times, flags):
    hits = np.flatnonzero(flags)
    return float(times[hits[0]]) if hits.size else None


def main(argv=None):
    args = parse_args(argv)
    json_path, png_path = output_paths(args.out, "biased_md", args.overwrite)
    if args.steps % DEPOSIT_EVERY:
        sys.exit(f"--steps must be a multiple of {DEPOSIT_EVERY}")
    start = time.perf_counter()
    potential = SuttonChen()
    starts = load_example("bulk_300K")
    bias = DeltaEntropyBias(strength=args.strength, kind="delta", deposit_every=DEPOSIT_EVERY)

    runs = {"unbiased": [], "biased": []}
    for seed in range(args.seeds):
        for name, b in (("unbiased", None), ("biased", bias)):
            result = run_md(
                starts[seed % len(starts)], potential, n_steps=args.steps, timestep=TIMESTEP,
                temperature=args.temperature, friction=FRICTION, bias=b, seed=seed,
                record_every=RECORD_EVERY,
            )  # fmt: skip
            runs[name].append(result)
            print(f"seed {seed} {name}: {result.wall_time:.1f} s", flush=True)
    # Control: plain MD at the temperature the biased runs heated up to.
    hot = float(np.round(np.mean([r.temperature[1:].mean() for r in runs["biased"]]), -1))
    runs["unbiased_hot"] = [
        run_md(
            starts[seed % len(starts)],
            potential,
            n_steps=args.steps,
            timestep=TIMESTEP,
            temperature=hot,
            friction=FRICTION,
            seed=seed,
            record_every=RECORD_EVERY,
        )
        for seed in range(args.seeds)
    ]

    times = np.array([f.info["time_fs"] for f in runs["unbiased"][0].frames])
    x = {name: [jaxinfo.descriptors(r.frames) for r in results] for name, results in runs.items()}
    n_atoms = len(starts[0])

    def frame_means(values):
        return values.reshape(-1, n_atoms).mean(axis=1)

    # Novelty threshold from the unbiased runs, leave one seed out.
    leave_one_out = []
    for seed in range(args.seeds):
        others = [x["unbiased"][s] for s in range(args.seeds) if s != seed]
        if others:
            delta = np.asarray(jaxinfo.delta_entropy(x["unbiased"][seed], np.concatenate(others)))
            leave_one_out.append(frame_means(delta))
    all_unbiased = np.concatenate(x["unbiased"])
    threshold = float(np.max(np.concatenate(leave_one_out))) + NOVELTY_MARGIN
    duration = args.steps * TIMESTEP

    per_seed = []
    curves = {"order": {}, "novelty": {}, "temperature": {}}
    for seed in range(args.seeds):
        entry = {"seed": seed, "start_frame": f"bulk_300K[{seed % len(starts)}]"}
        for name in NAMES:
            result = runs[name][seed]
            order = np.array([translational_order(f) for f in result.frames])
            if name != "unbiased":
                novelty = frame_means(
                    np.asarray(jaxinfo.delta_entropy(x[name][seed], all_unbiased, h=H))
                )
            else:
                novelty = leave_one_out[seed] if leave_one_out else np.zeros(len(order))
            melt = first_time(times, order < ORDER_THRESHOLD)
            novel = first_time(times, novelty > threshold)
            entry[name] = {
                "melting_time_fs": melt,
                "novelty_time_fs": novel,
                "melted": melt is not None,
                "final_order": float(order[-1]),
                "min_order": float(order.min()),
                "mean_temperature_K": float(result.temperature[1:].mean()),
                "final_potential_energy_per_atom_eV": float(result.potential_energy[-1] / n_atoms),
                "wall_time_s": result.wall_time,
                "energy_evaluations": result.energy_evaluations,
            }
            curves["order"][f"{name}/{seed}"] = order.tolist()
            curves["novelty"][f"{name}/{seed}"] = novelty.tolist()
            step_temperature = result.temperature[::RECORD_EVERY]
            curves["temperature"][f"{name}/{seed}"] = step_temperature.tolist()
        per_seed.append(entry)

    def summary(name, key):
        values = [s[name][key] for s in per_seed]
        reached = [v for v in values if v is not None]
        return {
            "reached": f"{len(reached)}/{len(values)}",
            "times_fs": values,
            "mean_fs_of_reached": float(np.mean(reached)) if reached else None,
            "censored_at_fs": duration,
        }

    result = {
        "description": __doc__.split("\n\n")[0],
        "settings": {
            "system": "32-atom fcc Cu (bundled bulk_300K frames), fixed cell",
            "potential": "SuttonChen (Cu), switch 5-6 Å",
            "temperature_K": args.temperature,
            "timestep_fs": TIMESTEP,
            "friction_per_fs": FRICTION,
            "steps": args.steps,
            "duration_fs": duration,
            "seeds": args.seeds,
            "bias": {
                "kind": bias.kind,
                "strength_eV_per_nat": bias.strength,
                "saturation_nats": bias.saturation,
                "deposit_every_steps": DEPOSIT_EVERY,
                "h": bias.h,
            },
            "control_temperature_K": hot,
            "order_threshold": ORDER_THRESHOLD,
            "novelty_threshold_nats": threshold,
            "record_every_fs": RECORD_EVERY * TIMESTEP,
        },
        "melting": {name: summary(name, "melting_time_fs") for name in NAMES},
        "novelty": {name: summary(name, "novelty_time_fs") for name in NAMES},
        "per_seed": per_seed,
        "curves": {"time_fs": times.tolist(), **curves},
        "wall_time_s": time.perf_counter() - start,
    }
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    plot(result, png_path, args.seeds)
    print(f"wrote {json_path} and {png_path} in {result['wall_time_s']:.0f} s")
    print(json.dumps({k: result[k] for k in ("melting", "novelty")}, indent=1))


def plot(result, path, n_seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array(result["curves"]["time_fs"]) / 1000.0
    panels = [
        ("order", "translational order ρ(G200)", result["settings"]["order_threshold"]),
        (
            "novelty",
            "mean δH vs unbiased frames (nats)",
            result["settings"]["novelty_threshold_nats"],
        ),
        ("temperature", "kinetic temperature (K)", result["settings"]["temperature_K"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    colours = plt.cm.tab10.colors
    for ax, (key, label, line) in zip(axes, panels, strict=True):
        for seed in range(n_seeds):
            for name, style in (("unbiased", "--"), ("biased", "-"), ("unbiased_hot", ":")):
                values = result["curves"][key][f"{name}/{seed}"]
                ax.plot(t[: len(values)], values, style, color=colours[seed], lw=1,
                        label=f"{name}, seed {seed}")  # fmt: skip
        ax.axhline(line, color="k", lw=0.8, ls=":")
        ax.set_xlabel("time (ps)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=6)
    fig.suptitle("δH-biased vs plain Langevin MD, 32-atom Cu (Sutton–Chen)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
