"""Generation experiment: grow a Cu dataset from three 300 K frames, per energy evaluation spent.

Seeds: three bundled ``bulk_300K`` frames (32 atoms each, frames 0, 4, 8). Potential: Sutton–Chen
Cu (:class:`jaxinfo.potentials.SuttonChen`). Every method gets the same budget of potential
evaluations (``--budget``, split equally over the seeds, seeds run one after the other) and
emits a frame every ``--sample-every`` evaluations:

* ``md``: plain Langevin MD at T (4 fs, friction 0.01/fs), no information term;
* ``metropolis[λ]``: Metropolis on ``λ·mean δH − (E − E_seed)/kT`` (all-atom Gaussian moves of
  0.03 Å, T_mc = 1), growing reference;
* ``gradient[λ]``: gradient ascent on the same objective (mobility 0.1 Å²/eV, at most 0.1 Å
  per atom and step), growing reference;
* ``gradient+noise[λ]``: the same with mobility 0.02 Å²/eV plus Gaussian noise of
  sqrt(2 · 0.02 Å²/eV · kT) per coordinate (an unadjusted overdamped Langevin step on the
  objective: deterministic ascent has no thermal noise and at small λ just relaxes).

The δH of each environment is saturated at 10 nats (``saturation``) in both information
objectives.

kT = k_B·T for all (T = ``--temperature``, default 1200 K); λ in ``--weights`` (default 3 and
10; λ is per structure, so λ/32 weighs each environment's δH against E/kT). Minimum
interatomic distance 1.5 Å everywhere.

Scores at checkpoints of the budget, for the dataset = seeds + frames emitted so far:
entropy H and diversity D (h = 0.015 1/Å), coverage (jaxinfo.overlap, eps = 1e-5) and mean
δH of the held-out ``bulk_1200K`` (384 environments) and ``liquid`` (1296 environments) frames,
and the Sutton–Chen energy per atom of the generated frames (physicality; the held-out frames'
energies are listed for comparison).

Usage:
    python experiments/generation.py [--out experiments/results] [--overwrite]
        [--budget 600] [--temperature 1200] [--weights 3 10]

Writes ``generation.json`` (every number) and ``generation.png`` under ``--out`` and refuses to
overwrite them unless ``--overwrite`` is given. About 2-3 minutes on 2 CPU cores (float32).
"""

from __future__ import annotations

import json
import time

import numpy as np
from _outputs import experiment_parser, output_paths
from ase import units

import jaxinfo
from jaxinfo.biased_md import run_md
from jaxinfo.datasets import load_example
from jaxinfo.generation import GenerationObjective, generate, gradient_ascent, metropolis
from jaxinfo.potentials import SuttonChen, energy_and_forces

SEED_FRAMES = (0, 4, 8)
H = 0.015
MIN_DISTANCE = 1.5
MD_TIMESTEP, MD_FRICTION = 4.0, 0.01
MC_DISPLACEMENT = 0.03
GRAD_STEP, GRAD_MAX_DISPLACEMENT = 0.1, 0.1
NOISY_STEP = 0.02  # Å²/eV, with Gaussian noise sqrt(2 · NOISY_STEP · kT) per coordinate
SATURATION = 10.0  # nats


def parse_args(argv=None):
    parser = experiment_parser(__doc__)
    parser.add_argument("--budget", type=int, default=600, help="energy evaluations (600)")
    parser.add_argument("--temperature", type=float, default=1200.0, help="T in K (1200)")
    parser.add_argument(
        "--weights", type=float, nargs="+", default=[3.0, 10.0], help="λ values (3 10)"
    )
    parser.add_argument("--sample-every", type=int, default=10, help="frame interval (10)")
    parser.add_argument("--checkpoints", type=int, default=12, help="score points (12)")
    return parser.parse_args(argv)


def run_methods(args, seeds, potential):
    """Returns {name: (frames, frame_evaluations, total_evaluations, extra)}."""
    kT = units.kB * args.temperature
    per_seed = args.budget // len(seeds)
    runs = {}

    start = time.perf_counter()
    frames, evals, spent = [], [], 0
    for index, atoms in enumerate(seeds):
        # One force call per step plus one at the start: per_seed - 1 steps per seed.
        md = run_md(
            atoms, potential, n_steps=per_seed - 1, timestep=MD_TIMESTEP,
            temperature=args.temperature, friction=MD_FRICTION, seed=index,
            record_every=args.sample_every, rebuild_every=args.sample_every,
        )  # fmt: skip
        for frame in md.frames[1:]:
            if frame.info["step"] % args.sample_every == 0:  # (the last frame may be off-grid)
                frames.append(frame)
                evals.append(spent + frame.info["energy_evaluations"])
        spent += md.energy_evaluations
    md_min = min(
        float(f.get_all_distances(mic=True)[np.triu_indices(len(f), 1)].min()) for f in frames
    )
    runs["md"] = (
        frames,
        evals,
        spent,
        {"wall_time_s": time.perf_counter() - start, "min_distance_A": md_min},
    )
    print(f"md: {len(frames)} frames, {spent} evaluations", flush=True)

    every = args.sample_every
    common = dict(min_distance=MIN_DISTANCE, grow_every=every)
    for weight in args.weights:
        objective = GenerationObjective(potential, kT, weight=weight, saturation=SATURATION, h=H)
        # Metropolis re-evaluates the current state after each emission (the reference grew):
        # one extra evaluation per emitted frame, taken out of its proposals.
        n_mc = per_seed * args.sample_every // (args.sample_every + 1)
        n_mc = n_mc // args.sample_every * args.sample_every
        steps = metropolis(objective, displacement=MC_DISPLACEMENT, **common)
        mc = generate(seeds, steps, n_steps=n_mc, sample_every=every, seed=0)
        runs[f"metropolis[{weight:g}]"] = (
            mc.frames,
            mc.frame_energy_evaluations.tolist(),
            mc.total_energy_evaluations,
            {
                "wall_time_s": mc.wall_time,
                "acceptance_rate": mc.acceptance_rate,
                "min_distance_A": mc.min_distance_overall,
            },
        )
        print(f"metropolis λ={weight}: {mc.total_energy_evaluations} evaluations", flush=True)
        for name, step_size, noise in (
            ("gradient", GRAD_STEP, 0.0),
            ("gradient+noise", NOISY_STEP, float(np.sqrt(2.0 * NOISY_STEP * kT))),
        ):
            steps = gradient_ascent(
                objective, step_size=step_size, max_displacement=GRAD_MAX_DISPLACEMENT,
                noise=noise, **common,
            )  # fmt: skip
            grad = generate(seeds, steps, n_steps=per_seed - 1, sample_every=every, seed=0)
            runs[f"{name}[{weight:g}]"] = (
                grad.frames,
                grad.frame_energy_evaluations.tolist(),
                grad.total_energy_evaluations,
                {
                    "wall_time_s": grad.wall_time,
                    "min_distance_A": grad.min_distance_overall,
                    "noise_A": noise,
                },
            )
            print(f"{name} λ={weight}: {grad.total_energy_evaluations} evaluations", flush=True)
    return runs


def score(runs, x_seeds, y_tests, checkpoints, potential):
    results = {}
    for name, (frames, evals, total, extra) in runs.items():
        x_frames = jaxinfo.descriptors(frames) if frames else np.zeros((0, x_seeds.shape[1]))
        rows_per_frame = np.cumsum([0] + [len(f) for f in frames])
        evals = np.asarray(evals)
        curve = []
        for c in checkpoints:
            n_frames = int(np.sum(evals <= c))
            x = np.concatenate([x_seeds, x_frames[: rows_per_frame[n_frames]]])
            point = {
                "energy_evaluations": int(c),
                "n_frames": n_frames,
                "n_environments": int(x.shape[0]),
                "entropy": float(jaxinfo.entropy(x, h=H)),
                "diversity": float(jaxinfo.diversity(x, h=H)),
            }
            for label, y in y_tests.items():
                point[f"coverage_{label}"] = float(jaxinfo.overlap(y, x, h=H))
                point[f"mean_delta_entropy_{label}"] = float(
                    np.mean(jaxinfo.delta_entropy(y, x, h=H))
                )
            curve.append(point)
        energies = [energy_and_forces(potential, f)[0] / len(f) for f in frames]
        results[name] = {
            "total_energy_evaluations": int(total),
            "n_frames": len(frames),
            "final": curve[-1],
            "curve": curve,
            "frame_energy_per_atom_eV": {
                "mean": float(np.mean(energies)),
                "min": float(np.min(energies)),
                "max": float(np.max(energies)),
            },
            **extra,
        }
    return results


def verdict(results, weights):
    """Compares gradient ascent with Metropolis (same λ) and MD at the end of the budget."""
    lines = []
    md = results["md"]["final"]
    for weight, variant in ((w, v) for w in weights for v in ("gradient", "gradient+noise")):
        g = results[f"{variant}[{weight:g}]"]["final"]
        m = results[f"metropolis[{weight:g}]"]["final"]
        for key in ("diversity", "entropy", "mean_delta_entropy_liquid",
                    "mean_delta_entropy_bulk_1200K", "coverage_bulk_1200K"):  # fmt: skip
            better = (lambda a, b: a < b) if key.startswith("mean_delta") else (lambda a, b: a > b)
            lines.append(
                {
                    "weight": weight,
                    "variant": variant,
                    "metric": key,
                    "gradient": g[key],
                    "metropolis": m[key],
                    "md": md[key],
                    "gradient_beats_metropolis": bool(better(g[key], m[key])),
                    "gradient_beats_md": bool(better(g[key], md[key])),
                }
            )
    return lines


def plot(results, path, budget):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("diversity", "diversity D (nats)"),
        ("mean_delta_entropy_bulk_1200K", "mean δH of held-out bulk 1200 K (nats)"),
        ("mean_delta_entropy_liquid", "mean δH of held-out liquid (nats)"),
        ("coverage_bulk_1200K", "coverage of bulk 1200 K (δH < 1e-5)"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name, result in results.items():
            curve = result["curve"]
            style = "-" if name.startswith("gradient") else "--" if name != "md" else ":"
            ax.plot(
                [p["energy_evaluations"] for p in curve], [p[key] for p in curve], style,
                marker="o", ms=3, label=name,
            )  # fmt: skip
        ax.set_xlabel("energy evaluations")
        ax.set_ylabel(label)
        ax.set_xlim(0, budget)
        if key.startswith("mean_delta"):
            ax.set_yscale("symlog", linthresh=1.0)
    axes[0].legend(fontsize=7)
    fig.suptitle("Growing a Cu dataset from 3 frames at 300 K (Sutton–Chen)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    json_path, png_path = output_paths(args.out, "generation", args.overwrite)
    start = time.perf_counter()

    potential = SuttonChen()
    bulk = load_example("bulk_300K")
    seeds = [bulk[i] for i in SEED_FRAMES]
    tests = {"bulk_1200K": load_example("bulk_1200K"), "liquid": load_example("liquid")}
    x_seeds = jaxinfo.descriptors(seeds)
    y_tests = {label: jaxinfo.descriptors(frames) for label, frames in tests.items()}

    runs = run_methods(args, seeds, potential)
    checkpoints = np.linspace(0, args.budget, args.checkpoints + 1).round().astype(int)
    results = score(runs, x_seeds, y_tests, checkpoints, potential)
    reference_energies = {
        label: float(np.mean([energy_and_forces(potential, f)[0] / len(f) for f in frames]))
        for label, frames in {**tests, "bulk_300K_seeds": seeds}.items()
    }
    summary = {
        "description": __doc__.split("\n\n")[0],
        "settings": {
            "seeds": [f"bulk_300K[{i}]" for i in SEED_FRAMES],
            "potential": "SuttonChen (Cu, Sutton & Chen 1990), switch 5-6 Å",
            "temperature_K": args.temperature,
            "kT_eV": units.kB * args.temperature,
            "budget_energy_evaluations": args.budget,
            "sample_every": args.sample_every,
            "weights_lambda": args.weights,
            "h": H,
            "min_distance_A": MIN_DISTANCE,
            "md": {"timestep_fs": MD_TIMESTEP, "friction_per_fs": MD_FRICTION},
            "metropolis": {"displacement_A": MC_DISPLACEMENT, "temperature_mc": 1.0},
            "gradient": {
                "step_size_A2_per_eV": GRAD_STEP,
                "max_displacement_A": GRAD_MAX_DISPLACEMENT,
            },
            "gradient+noise": {"step_size_A2_per_eV": NOISY_STEP, "noise": "sqrt(2 step kT)"},
            "saturation_nats": SATURATION,
            "test_environments": {label: int(y.shape[0]) for label, y in y_tests.items()},
        },
        "reference_energy_per_atom_eV": reference_energies,
        "results": results,
        "comparison_at_budget": verdict(results, args.weights),
        "wall_time_s": time.perf_counter() - start,
    }
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    plot(results, png_path, args.budget)
    print(f"wrote {json_path} and {png_path} in {summary['wall_time_s']:.0f} s")
    for line in summary["comparison_at_budget"]:
        print(line)


if __name__ == "__main__":
    main()
