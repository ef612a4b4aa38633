"""δH as a model-free uncertainty (paper Fig. 4), teacher-student surrogate on the bundled Cu data.

SURROGATE (the paper's teachers are DFT datasets and its students MACE/NequIP). Teacher: the
EMT forces of the bundled Cu example (``jaxinfo.datasets.load_example``: bulk 300-1200 K,
liquid, surface 300/600 K; 12 frames of 32 atoms each). Student: kernel ridge regression
(Gaussian kernel on the per-atom descriptor, length scale = median distance between training
environments, ridge 1e-4) predicting the per-atom force norm (eV/Å), trained on 9 of the 12
bulk 300 K frames (seed 0). Every other frame is a test frame. Shown:

* per-atom absolute error against δH(x | training set) (h = 0.015 1/Å): scatter, binned mean
  and binned median, with a straight-line fit of the binned medians against δH and its
  Pearson r;
  The full-range fit is reported as is; the fit over bins with median δH < 10 nats is
  reported beside it because surface atoms (δH of 50-200 nats given bulk training data) have
  small force norms that a regressor falling back to its mean predicts well by accident;
* per test condition: the overlap with the training set (fraction of environments with
  δH < 1e-5) against log10 of the condition's MAE, with Pearson ρ.

Usage: python papers_reproduction/uncertainty.py --out DIR [--quick]
"""

from __future__ import annotations

import numpy as np
from _common import Figure, parse_args, pyplot

import jaxinfo
from jaxinfo.datasets import load_example

H = 0.015
RIDGE = 1e-4
TRAIN_LABEL, N_TRAIN = "bulk_300K", 9
N_BINS = 12
LOW_DH = 10.0


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("uncertainty", args, kind="surrogate", panel="Fig. 4 (teacher-student)")
    frames = load_example()
    if args.quick:  # the first 6 frames of each condition
        keep = [
            i
            for i, a in enumerate(frames)
            if sum(b.info["label"] == a.info["label"] for b in frames[:i]) < 6
        ]
        frames = [frames[i] for i in keep]
    labels = np.array([a.info["label"] for a in frames])
    x_all = np.asarray(jaxinfo.descriptors(frames), dtype=np.float64)
    atom_frame = np.repeat(np.arange(len(frames)), [len(a) for a in frames])
    y_all = np.concatenate([np.linalg.norm(a.get_forces(), axis=1) for a in frames])
    rng = np.random.default_rng(0)
    candidates = np.flatnonzero(labels == TRAIN_LABEL)
    n_train = min(N_TRAIN, len(candidates) - 2)
    train = np.sort(rng.choice(candidates, n_train, replace=False))
    train_mask = np.isin(atom_frame, train)
    x_tr, y_tr = x_all[train_mask], y_all[train_mask]
    x_te, y_te = x_all[~train_mask], y_all[~train_mask]
    label_te = labels[atom_frame[~train_mask]]

    d = np.sqrt(np.maximum(((x_tr[:, None] - x_tr[None]) ** 2).sum(-1), 0.0))
    length = float(np.median(d[np.triu_indices(len(x_tr), 1)]))

    def gram(a, b):
        d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
        return np.exp(-np.maximum(d2, 0.0) / (2.0 * length**2))

    mean = y_tr.mean()
    alpha = np.linalg.solve(gram(x_tr, x_tr) + RIDGE * np.eye(len(x_tr)), y_tr - mean)
    error = np.abs(gram(x_te, x_tr) @ alpha + mean - y_te)
    dh = np.asarray(jaxinfo.delta_entropy(x_te, x_tr, h=H), dtype=np.float64)

    edges = np.quantile(dh, np.linspace(0, 1, N_BINS + 1))
    which = np.clip(np.searchsorted(edges, dh, side="right") - 1, 0, N_BINS - 1)
    bins = [
        {
            "dH_center": float(np.median(dh[which == b])),
            "mean_error": float(error[which == b].mean()),
            "median_error": float(np.median(error[which == b])),
            "count": int(np.sum(which == b)),
        }
        for b in range(N_BINS)
        if np.any(which == b)
    ]
    centers = np.array([b["dH_center"] for b in bins])
    medians = np.array([b["median_error"] for b in bins])
    slope, intercept = np.polyfit(centers, medians, 1)
    r_median = float(np.corrcoef(centers, medians)[0, 1])
    low = centers < LOW_DH  # the range without the far-out surface atoms (see the docstring)
    r_median_low = float(np.corrcoef(centers[low], medians[low])[0, 1]) if low.sum() > 2 else None

    per_label = {}
    for label in dict.fromkeys(label_te):
        m = label_te == label
        per_label[label] = {
            "n_environments": int(m.sum()),
            "overlap": float(np.mean(dh[m] < 1e-5)),
            "mean_dH": float(dh[m].mean()),
            "mae_eV_A": float(error[m].mean()),
        }
    ov = np.array([v["overlap"] for v in per_label.values()])
    mae = np.array([v["mae_eV_A"] for v in per_label.values()])
    rho = float(np.corrcoef(ov, np.log10(mae))[0, 1])

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.scatter(dh, 1e3 * error, s=2, alpha=0.3, c="gray", label="test atoms")
    ax.plot(centers, [1e3 * b["mean_error"] for b in bins], "o-", label="binned mean")
    ax.plot(centers, 1e3 * medians, "s-", label="binned median")
    ax.plot(
        centers,
        1e3 * (slope * centers + intercept),
        "k--",
        label=f"linear fit of medians, r = {r_median:.2f}",
    )
    ax.set_yscale("log")
    ax.set_xlabel("δH(x | training set) (nats)")
    ax.set_ylabel("student |F| error (meV/Å)")
    ax.legend()
    ax = axes[1]
    for label, v in per_label.items():
        ax.scatter(v["overlap"], 1e3 * v["mae_eV_A"])
        ax.annotate(label, (v["overlap"], 1e3 * v["mae_eV_A"]), fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("overlap with the training set (fraction, δH < 1e-5)")
    ax.set_ylabel("student |F| MAE (meV/Å)")
    ax.set_title(f"Pearson ρ(overlap, log MAE) = {rho:.2f}")
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "h": H,
            "ridge": RIDGE,
            "train_label": TRAIN_LABEL,
            "train_frames": train,
            "krr_length_scale": length,
        },
        bins=bins,
        median_fit={
            "slope_eV_A_per_nat": float(slope),
            "intercept_eV_A": float(intercept),
            "pearson_r": r_median,
            "pearson_r_bins_below_10_nats": r_median_low,
        },
        per_condition=per_label,
        pearson_overlap_vs_log_mae=rho,
        paper_claim="error grows with δH; overlap with the training set anticorrelates with "
        "the log error",
        verdict="QUALITATIVE",
    )


if __name__ == "__main__":
    main()
