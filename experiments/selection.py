"""Selection experiment: which subset of the bundled Cu data keeps the most information?

On the bundled example (84 Cu frames: bulk 300-1200 K, liquid, fcc(111) surface at 300/600 K),
one fixed split holds out 3 frames per condition (21 test frames); from the remaining 63-frame
training pool each method selects 10 %, 20 %, ..., 90 % of the frames:

* msc, fps (deterministic greedy; one run, prefixes give every size),
* gradient (``jaxinfo.select(..., method="gradient")``, seed 0, one run per size),
* kmeans (seed 0, one run per size),
* random (5 seeds, permutation prefixes; mean and standard deviation reported).

Each subset is scored by the entropy H and diversity D of its environments, its overlap with
the whole pool (fraction of pool environments with dH < 1e-5 given the subset), and the test
error of a simple model fitted on it: kernel ridge regression (numpy, Gaussian kernel on the
mean descriptor of each frame, length scale = median pairwise distance of the pool's mean
descriptors, ridge 1e-6 on the unit-diagonal kernel, fixed for every subset) predicting the
energy per atom, evaluated on the 21 held-out frames (MAE in meV/atom). Everything runs in
float64 (JAX x64 is enabled by the script).

Usage:
    python experiments/selection.py [--out experiments/results] [--overwrite] [--h 0.015]

Writes ``selection.json`` (every number) and ``selection.png`` (four panels) under ``--out``
and refuses to overwrite them unless ``--overwrite`` is given. About 2-4 minutes on 2 CPU cores
(most of it descriptor computation and compilation).
"""

from __future__ import annotations

import json
import math
import sys
import time

import jax
import numpy as np
from _outputs import experiment_parser, output_paths

import jaxinfo
from jaxinfo.datasets import load_example
from jaxinfo.selection import select, selection_summary

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TEST_PER_LABEL = 3
SPLIT_SEED = 0
RANDOM_SEEDS = (0, 1, 2, 3, 4)
KRR_RIDGE = 1e-6


def parse_args(argv=None):
    parser = experiment_parser(__doc__)
    parser.add_argument("--h", type=float, default=0.015, help="bandwidth in 1/Å (0.015)")
    parser.add_argument(
        "--steps", type=int, default=300, help="ascent steps of the gradient method (300)"
    )
    return parser.parse_args(argv)


def split(frames):
    """Stratified hold-out: TEST_PER_LABEL frames of every label, drawn once with SPLIT_SEED."""
    rng = np.random.default_rng(SPLIT_SEED)
    labels = np.array([a.info["label"] for a in frames])
    test = []
    for label in dict.fromkeys(labels):
        members = np.flatnonzero(labels == label)
        test.extend(rng.choice(members, TEST_PER_LABEL, replace=False).tolist())
    test = np.sort(test)
    pool = np.setdiff1d(np.arange(len(frames)), test)
    return pool, test


def krr_mae(train_features, train_targets, test_features, test_targets, length_scale):
    """Kernel ridge regression (Gaussian kernel); returns the test MAE in the target's units."""

    def gram(a, b):
        d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
        return np.exp(-np.maximum(d2, 0.0) / (2.0 * length_scale**2))

    offset = train_targets.mean()
    k = gram(train_features, train_features)
    alpha = np.linalg.solve(k + KRR_RIDGE * np.eye(len(k)), train_targets - offset)
    predicted = gram(test_features, train_features) @ alpha + offset
    return float(np.mean(np.abs(predicted - test_targets)))


def main(argv=None):
    args = parse_args(argv)
    # float64: in float32 the self-distance of an isolated environment carries a rounding error
    # of ~1e-7 / (2 h^2) in the exponent, so dH(x | X) of x in X can exceed the 1e-5 overlap
    # threshold and the overlap of a set with itself drops below 1.
    jax.config.update("jax_enable_x64", True)
    out = args.out
    json_path, png_path = output_paths(out, "selection", args.overwrite)
    clock = {}
    start = time.perf_counter()

    frames = load_example()
    labels = [a.info["label"] for a in frames]
    energy = np.array([a.get_potential_energy() / len(a) for a in frames])  # eV/atom
    t0 = time.perf_counter()
    x_all = np.asarray(jaxinfo.descriptors(frames))
    clock["descriptors_s"] = time.perf_counter() - t0
    bounds = np.cumsum([0] + [len(a) for a in frames])
    per_structure = [x_all[bounds[i] : bounds[i + 1]] for i in range(len(frames))]
    features = np.stack([p.mean(axis=0).astype(np.float64) for p in per_structure])

    pool, test = split(frames)
    pool_parts = [per_structure[i] for i in pool]
    n_pool = len(pool)
    sizes = [max(1, math.ceil(f * n_pool)) for f in FRACTIONS]
    pool_features = features[pool]
    diffs = pool_features[:, None, :] - pool_features[None, :, :]
    length_scale = float(np.median(np.sqrt(np.sum(diffs**2, -1))[np.triu_indices(n_pool, 1)]))

    def score(local):
        local = np.asarray(local)
        summary = selection_summary(pool_parts, local, args.h)
        chosen = pool[local]
        summary["test_mae_meV"] = 1e3 * krr_mae(
            features[chosen], energy[chosen], features[test], energy[test], length_scale
        )
        summary["indices"] = [int(i) for i in chosen]
        summary["labels"] = {lab: int(sum(labels[i] == lab for i in chosen)) for lab in set(labels)}
        return summary

    full = score(np.arange(n_pool))
    results: dict[str, list] = {}

    # Greedy methods: one run at the largest size; prefixes are the smaller selections.
    for method in ("msc", "fps"):
        t0 = time.perf_counter()
        order = select(pool_parts, sizes[-1], method=method, h=args.h)
        clock[f"{method}_s"] = time.perf_counter() - t0
        results[method] = [score(order[:k]) for k in sizes]

    for method, options in (
        ("gradient", {"steps": args.steps}),
        ("kmeans", {}),
    ):
        t0 = time.perf_counter()
        chosen = [select(pool_parts, k, method=method, h=args.h, seed=0, **options) for k in sizes]
        clock[f"{method}_s"] = time.perf_counter() - t0
        results[method] = [score(c) for c in chosen]

    t0 = time.perf_counter()
    random_runs = []
    for seed in RANDOM_SEEDS:
        order = select(pool_parts, sizes[-1], method="random", seed=seed)
        random_runs.append([score(order[:k]) for k in sizes])
    clock["random_s"] = time.perf_counter() - t0
    keys = ("entropy", "diversity", "overlap", "test_mae_meV")
    results["random"] = [
        {
            **{k: float(np.mean([run[j][k] for run in random_runs])) for k in keys},
            **{f"{k}_std": float(np.std([run[j][k] for run in random_runs])) for k in keys},
            "compressed_envs": float(np.mean([run[j]["compressed_envs"] for run in random_runs])),
        }
        for j in range(len(sizes))
    ]

    ratio = [
        g["entropy"] / m["entropy"]
        for g, m in zip(results["gradient"], results["msc"], strict=True)
    ]
    clock["total_s"] = time.perf_counter() - start
    report = {
        "config": {
            "h": args.h,
            "fractions": list(FRACTIONS),
            "sizes": sizes,
            "pool_size": n_pool,
            "test_size": len(test),
            "test_indices": [int(i) for i in test],
            "split": f"{TEST_PER_LABEL} test frames per label, numpy default_rng({SPLIT_SEED})",
            "random_seeds": list(RANDOM_SEEDS),
            "gradient_steps": args.steps,
            "krr": {"kernel": "gaussian", "length_scale": length_scale, "ridge": KRR_RIDGE},
            "dtype": str(x_all.dtype),
            "jaxinfo_version": jaxinfo.__version__,
        },
        "full_pool": full,
        "results": results,
        "gradient_over_msc_entropy": ratio,
        "gradient_within_3_percent_of_msc": bool(min(ratio) >= 0.97),
        "timing_s": clock,
    }
    json_path.write_text(json.dumps(report, indent=1))
    plot(report, png_path)
    print(summary_table(report))
    print(f"wrote {out / 'selection.json'} and {out / 'selection.png'}")
    return 0


def summary_table(report) -> str:
    fractions = report["config"]["fractions"]
    lines = []
    for key, fmt in (
        ("entropy", "{:6.3f}"),
        ("diversity", "{:6.3f}"),
        ("overlap", "{:6.3f}"),
        ("test_mae_meV", "{:6.2f}"),
    ):
        lines.append(f"{key} (full pool: {report['full_pool'][key]:.3f})")
        lines.append("  fraction  " + " ".join(f"{f:6.1f}" for f in fractions))
        for method, rows in report["results"].items():
            lines.append(f"  {method:9s} " + " ".join(fmt.format(r[key]) for r in rows))
    ratio = report["gradient_over_msc_entropy"]
    lines.append("gradient / msc entropy: " + " ".join(f"{r:.3f}" for r in ratio))
    return "\n".join(lines)


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = report["config"]["fractions"]
    panels = (
        ("entropy", "entropy H (nats)"),
        ("diversity", "diversity D (nats)"),
        ("overlap", "overlap with the pool"),
        ("test_mae_meV", "KRR test MAE (meV/atom)"),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), constrained_layout=True)
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for method, rows in report["results"].items():
            values = np.array([r[key] for r in rows])
            (line,) = ax.plot(fractions, values, marker="o", ms=3, label=method)
            if method == "random":
                std = np.array([r[f"{key}_std"] for r in rows])
                ax.fill_between(
                    fractions, values - std, values + std, color=line.get_color(), alpha=0.2
                )
        if key != "test_mae_meV":
            ax.axhline(report["full_pool"][key], color="k", lw=0.8, ls="--", label="full pool")
        if key == "test_mae_meV":
            ax.set_yscale("log")
        ax.set_xlabel("fraction of the training pool selected")
        ax.set_title(title)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Selection on the bundled Cu data (h = {report['config']['h']} 1/Å, "
        f"pool {report['config']['pool_size']} frames, test {report['config']['test_size']})"
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
