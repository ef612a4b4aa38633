"""Tutorial: finding the novel environments of a trajectory with δH.

A model trained on bulk Cu at 300 K and 600 K meets a new trajectory: hotter bulk, the liquid
and surfaces. δH(y | X) = -log sum_j K(y, x_j) of each new environment y against the training
set X says which environments the training set does not cover (δH > 0). Writes
trajectory_dH.xyz (per-atom 'dH' for OVITO or ase) in the current directory.
"""

import numpy as np

import jaxinfo
from jaxinfo.datasets import example_path
from jaxinfo.io import read_structures, write_per_atom

# Any file ase reads works here, with a frame selection: read_structures("md.xyz@0:1000:10").
frames = read_structures(example_path())
descriptors = jaxinfo.descriptors(frames)  # rows: frame by frame, atom by atom
is_training = np.array([atoms.info["label"] in ("bulk_300K", "bulk_600K") for atoms in frames])
row_is_training = np.repeat(is_training, [len(atoms) for atoms in frames])

x = descriptors[row_is_training]  # training set X
y = descriptors[~row_is_training]  # the new trajectory
trajectory = [atoms for atoms, train in zip(frames, is_training, strict=True) if not train]
dH = np.asarray(jaxinfo.delta_entropy(y, x, h=0.015))  # (n_env,), nats
print(f"{len(y)} new environments against {len(x)} training ones")

# Per frame: the largest δH and the fraction of novel atoms.
offsets = np.cumsum([0] + [len(atoms) for atoms in trajectory])
print(f"{'frame':>5s} {'label':13s} {'max δH':>8s} {'novel':>6s}")
frame_max = []
for i, atoms in enumerate(trajectory):
    values = dH[offsets[i] : offsets[i + 1]]
    frame_max.append(values.max())
    if i % 12 == 0:  # one frame per condition
        label = atoms.info["label"]
        print(f"{i:5d} {label:13s} {values.max():8.2f} {np.mean(values > 0):6.0%}")

# The outliers: frames whose most novel environment is the least covered.
worst = np.argsort(frame_max)[::-1][:5]
print("most novel frames:", [(int(i), trajectory[i].info["label"]) for i in worst])
assert all(trajectory[i].info["label"] != "bulk_900K" for i in worst)

# Which atoms of a surface slab are novel? Sort a slab's atoms into its four layers by height:
# the two outer layers carry the novelty, the inner ones look like bulk.
slab = next(i for i, atoms in enumerate(trajectory) if atoms.info["label"] == "surface_300K")
z = trajectory[slab].positions[:, 2]
layer = np.searchsorted(np.sort(z)[[15, 31, 47]], z, side="right")  # 16 atoms per layer
slab_dH = dH[offsets[slab] : offsets[slab + 1]]
for index in range(4):
    print(f"layer {index}: mean δH = {slab_dH[layer == index].mean():7.2f}")
assert slab_dH[layer == 0].mean() > slab_dH[layer == 1].mean()

# Write the trajectory with a per-atom 'dH' column: colour atoms by it in OVITO, or read back
# with ase.io.read("trajectory_dH.xyz", ":")[i].arrays["dH"].
write_per_atom("trajectory_dH.xyz", trajectory, {"dH": dH}, overwrite=True)
print("wrote trajectory_dH.xyz")
