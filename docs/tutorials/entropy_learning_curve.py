"""Tutorial: the information entropy of a dataset, and its learning curve.

Runs on the bundled Cu dataset; writes learning_curve.png in the current directory (needs
matplotlib). Run it with ``python docs/tutorials/entropy_learning_curve.py``.
"""

import numpy as np

import jaxinfo
from jaxinfo.datasets import example_labels, load_example

# 1. One descriptor row per atomic environment: (n_env, 2k - 1) = (4368, 63), in 1/Å.
frames = load_example()
x = jaxinfo.descriptors(frames, k=32, cutoff=5.0)
labels = np.repeat([atoms.info["label"] for atoms in frames], [len(a) for a in frames])
print("descriptors:", x.shape)

# 2. Entropy H and diversity D of each condition and of the whole set, for three bandwidths
#    at once (one distance pass). H <= D <= log N; all in nats.
h = np.array([0.01, 0.015, 0.03])
print(f"{'label':14s} {'n_env':>5s}   H(0.01)  H(0.015)   H(0.03)  D(0.015)   log N")
for label in [*example_labels(), "all"]:
    xs = x if label == "all" else x[labels == label]
    H = np.asarray(jaxinfo.entropy(xs, h=h))
    D = float(jaxinfo.diversity(xs, h=0.015))
    cells = " ".join(f"{value:9.3f}" for value in H)
    print(f"{label:14s} {len(xs):5d} {cells} {D:9.3f} {np.log(len(xs)):7.3f}")

# Hotter bulk holds more information than colder bulk; the liquid nearly saturates log N.
H_by_label = {label: float(jaxinfo.entropy(x[labels == label])) for label in example_labels()}
assert H_by_label["bulk_300K"] < H_by_label["bulk_600K"] < H_by_label["bulk_1200K"]

# 3. Learning curve: H of random subsets drawn WITHOUT replacement (a draw with replacement
#    repeats environments and biases H low). A curve that flattens says that more data of
#    the same kind adds little information.
rng = np.random.default_rng(0)
pool = x[np.isin(labels, ["bulk_300K", "bulk_600K", "bulk_900K", "bulk_1200K"])]
sizes = [48, 192, 768, len(pool)]
curve = []
for n in sizes:
    runs = 1 if n == len(pool) else 3
    values = [
        float(jaxinfo.entropy(pool[rng.choice(len(pool), size=n, replace=False)]))
        for _ in range(runs)
    ]
    curve.append((n, np.mean(values), np.std(values)))
    mean, std = np.mean(values), np.std(values)
    print(f"n = {n:5d}  H = {mean:.3f} ± {std:.3f}  (log n = {np.log(n):.3f})")

# 4. Plot (the CLI does the same: jaxinfo learning-curve --example --plot curve.png).
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

n, mean, std = map(np.asarray, zip(*curve, strict=True))
figure, axes = plt.subplots(figsize=(5, 3.5))
axes.errorbar(n, mean, yerr=std, marker="o", capsize=3, label="H (bulk, all temperatures)")
axes.plot(n, np.log(n), "k--", linewidth=0.8, label="log n (maximum)")
axes.set_xscale("log")
axes.set_xlabel("environments sampled")
axes.set_ylabel("entropy (nats)")
axes.legend()
figure.savefig("learning_curve.png", dpi=120, bbox_inches="tight")
print("wrote learning_curve.png")
