"""Tutorial: comparing two datasets with entropy, overlap and δH.

Dataset A is the bulk crystal at all four temperatures, dataset B the (111) surfaces at 300 K
and 600 K. How much does each hold, how much of one does the other cover, and what does B add
to A?
"""

import numpy as np

import jaxinfo
from jaxinfo.datasets import load_example

frames = load_example()
x = jaxinfo.descriptors(frames)
labels = np.repeat([atoms.info["label"] for atoms in frames], [len(a) for a in frames])
a = x[np.isin(labels, ["bulk_300K", "bulk_600K", "bulk_900K", "bulk_1200K"])]
b = x[np.isin(labels, ["surface_300K", "surface_600K"])]
union = np.concatenate([a, b])
h = 0.015

# 1. How much information each holds, and their union.
H_a, H_b, H_ab = (float(jaxinfo.entropy(s, h=h)) for s in (a, b, union))
print(f"H(A) = {H_a:.3f}  H(B) = {H_b:.3f}  H(A ∪ B) = {H_ab:.3f} nats")

# 2. Overlap (completeness): the fraction of one set's environments that the other covers
#    (δH < 1e-5). It is not symmetric.
b_given_a = float(jaxinfo.overlap(b, a, h=h))
a_given_b = float(jaxinfo.overlap(a, b, h=h))
print(f"overlap(B | A) = {b_given_a:.3f}   overlap(A | B) = {a_given_b:.3f}")

# 3. What B adds to A: the δH of B's environments against A. Environments with δH > 0 are the
#    new ones (surface atoms); adding them raises the entropy of the union.
dH = np.asarray(jaxinfo.delta_entropy(b, a, h=h))
print(f"B against A: mean δH = {dH.mean():.2f}, novel = {np.mean(dH > 0):.0%} of B")
assert np.mean(dH > 0) > 0.2  # the surface layers are new to a bulk-only dataset

# 4. Comparing systems of different density: pick h from the atomic volume, so that entropies
#    of (say) the crystal and the liquid are measured on the same footing.
for label in ("bulk_300K", "liquid"):
    chosen = [atoms for atoms in frames if atoms.info["label"] == label]
    volume = np.mean([jaxinfo.atomic_volume(atoms) for atoms in chosen])
    h_volume = jaxinfo.bandwidth_from_volume(volume)
    print(f"{label:10s} V = {volume:6.2f} Å³/atom -> h = {h_volume:.4f} 1/Å")
