"""Dataset compression (paper Fig. 2d/e): information gap and model error against the kept fraction.

SURROGATE (the paper compresses rMD17/GAP-20-scale data). Data: the bundled Cu example
(``jaxinfo.datasets.load_example``: 84 EMT frames of 32 atoms; bulk 300-1200 K, liquid, surface
300/600 K). Two pools, each with 3 frames per condition held out as its test set (seed 0):

* low-entropy pool: the bulk frames at 300 K and 600 K,
* high-entropy pool: every condition.

Each pool is compressed to 20, 40, 60, 80 and 100 % of its frames with ``jaxinfo.select``:
msc and fps (greedy, one run, prefixes) and random (5 seeds; mean ± std; quick: 1 seed,
20/60/100 %).
For each subset: the information gap, the mean over the pool's environments of
max(δH(x | subset), 0) in nats (h = 0.015 1/Å; 0 when the subset covers the whole pool; the
entropy difference H(pool) − H(subset) is not used because H of a subset can exceed the pool's
when redundant frames are dropped), the overlap (fraction of pool environments with
δH < 1e-5), H(subset), and the test MAE of a cheap student: kernel ridge regression
(Gaussian kernel on the per-atom descriptor, length scale = median distance between 2000
random pool environments, ridge 1e-4) predicting the norm of the EMT force on each atom
(eV/Å), on every atom of the pool's held-out frames.

Usage: python papers_reproduction/compression_gap.py --out DIR [--quick]
"""

from __future__ import annotations

import math

import numpy as np
from _common import Figure, parse_args, pyplot

import jaxinfo
from jaxinfo.datasets import load_example

H = 0.015
FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
TEST_PER_LABEL = 3
RIDGE = 1e-4
OVERLAP_EPS = 1e-5
POOLS = {"low_entropy": ("bulk_300K", "bulk_600K"), "high_entropy": None}


def krr_mae(x_train, y_train, x_test, y_test, length):
    def gram(a, b):
        d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
        return np.exp(-np.maximum(d2, 0.0) / (2.0 * length**2))

    mean = y_train.mean()
    alpha = np.linalg.solve(gram(x_train, x_train) + RIDGE * np.eye(len(x_train)), y_train - mean)
    return float(np.mean(np.abs(gram(x_test, x_train) @ alpha + mean - y_test)))


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("compression_gap", args, kind="surrogate", panel="Fig. 2d/e (compression)")
    seeds = (0,) if args.quick else (0, 1, 2, 3, 4)
    fractions = (0.2, 0.6, 1.0) if args.quick else FRACTIONS
    frames = load_example()
    labels = np.array([a.info["label"] for a in frames])
    x_all = np.asarray(jaxinfo.descriptors(frames), dtype=np.float64)
    bounds = np.cumsum([0] + [len(a) for a in frames])
    per_frame = [x_all[bounds[i] : bounds[i + 1]] for i in range(len(frames))]
    fnorm = [np.linalg.norm(a.get_forces(), axis=1) for a in frames]
    rng = np.random.default_rng(0)

    results = {}
    for pool_name, keep in POOLS.items():
        members = np.flatnonzero(np.isin(labels, keep)) if keep else np.arange(len(frames))
        test = []
        for label in dict.fromkeys(labels[members]):
            in_label = members[labels[members] == label]
            test += rng.choice(in_label, TEST_PER_LABEL, replace=False).tolist()
        pool = np.setdiff1d(members, test)
        parts = [per_frame[i] for i in pool]
        x_pool = np.concatenate(parts)
        sample = x_pool[rng.choice(len(x_pool), min(2000, len(x_pool)), replace=False)]
        d = np.sqrt(np.maximum(((sample[:, None] - sample[None]) ** 2).sum(-1), 0))
        length = float(np.median(d[np.triu_indices(len(sample), 1)]))
        x_test = np.concatenate([per_frame[i] for i in test])
        y_test = np.concatenate([fnorm[i] for i in test])
        h_pool = float(jaxinfo.entropy(x_pool, h=H))
        sizes = [max(1, math.ceil(f * len(pool))) for f in fractions]

        def score(
            local,
            x_pool=x_pool,
            pool=pool,
            parts=parts,
            length=length,
            x_test=x_test,
            y_test=y_test,
        ):
            x = np.concatenate([parts[i] for i in local])
            y = np.concatenate([fnorm[pool[i]] for i in local])
            dh = np.asarray(jaxinfo.delta_entropy(x_pool, x, h=H), dtype=np.float64)
            return {
                "gap": float(np.mean(np.maximum(dh, 0.0))),
                "overlap": float(np.mean(dh < OVERLAP_EPS)),
                "H_subset": float(jaxinfo.entropy(x, h=H)),
                "mae": krr_mae(x, y, x_test, y_test, length),
            }

        methods = {}
        for method in ("msc", "fps"):
            order = np.asarray(jaxinfo.select(parts, sizes[-1], method=method, h=H))
            methods[method] = [score(order[:k]) for k in sizes]
        random_runs = []
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(pool))
            random_runs.append([score(order[:k]) for k in sizes])
        methods["random"] = [
            {
                "gap": float(np.mean([r[i]["gap"] for r in random_runs])),
                "gap_std": float(np.std([r[i]["gap"] for r in random_runs])),
                "overlap": float(np.mean([r[i]["overlap"] for r in random_runs])),
                "H_subset": float(np.mean([r[i]["H_subset"] for r in random_runs])),
                "mae": float(np.mean([r[i]["mae"] for r in random_runs])),
                "mae_std": float(np.std([r[i]["mae"] for r in random_runs])),
            }
            for i in range(len(sizes))
        ]
        results[pool_name] = {
            "labels": sorted(set(labels[pool])),
            "n_pool_frames": len(pool),
            "n_test_frames": len(test),
            "H_pool": h_pool,
            "log_n_pool": float(np.log(len(x_pool))),
            "krr_length_scale": length,
            "sizes_frames": sizes,
            "methods": methods,
        }
        print(f"{pool_name}: H = {h_pool:.3f}", flush=True)

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    style = {"msc": "o-", "fps": "s-", "random": "^--"}
    for col, (pool_name, r) in enumerate(results.items()):
        for method, rows in r["methods"].items():
            gap = [row["gap"] for row in rows]
            mae = [1e3 * row["mae"] for row in rows]
            if method == "random":
                axes[0, col].errorbar(
                    fractions,
                    gap,
                    [row["gap_std"] for row in rows],
                    fmt=style[method],
                    label=method,
                )
                axes[1, col].errorbar(
                    fractions,
                    mae,
                    [1e3 * row["mae_std"] for row in rows],
                    fmt=style[method],
                    label=method,
                )
            else:
                axes[0, col].plot(fractions, gap, style[method], label=method)
                axes[1, col].plot(fractions, mae, style[method], label=method)
        axes[0, col].set_title(f"{pool_name.replace('_', '-')} pool (H = {r['H_pool']:.2f} nats)")
        axes[0, col].set_ylabel("information gap ⟨max(δH(pool | subset), 0)⟩ (nats)")
        axes[1, col].set_ylabel("student |F| MAE (meV/Å)")
        axes[1, col].set_xlabel("fraction of frames kept")
        axes[0, col].legend()
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "h": H,
            "fractions": fractions,
            "random_seeds": seeds,
            "ridge": RIDGE,
            "test_frames_per_label": TEST_PER_LABEL,
        },
        pools=results,
        paper_claim="msc keeps the information gap near zero at much smaller fractions than "
        "random or fps, and models trained on msc subsets keep a lower error",
        verdict="QUALITATIVE",
    )


if __name__ == "__main__":
    main()
