"""Multi-device kernel sums: the same numbers on 4 (simulated) devices as on one.

XLA_FLAGS must be set before JAX is imported. On a CPU-only machine the flag creates 4 host
devices; on a GPU machine jax.devices() lists the GPUs and the flag does not matter.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax
import numpy as np

import jaxinfo
from jaxinfo.datasets import load_example

x = jaxinfo.descriptors(load_example("liquid")[:6])
mesh = jaxinfo.data_mesh()  # a 1-D mesh named "data" over all devices
print(f"{len(jax.devices())} devices: {jax.devices()}")

one = jaxinfo.entropy(x, h=0.015)
many = jaxinfo.entropy(x, h=0.015, mesh=mesh)  # queries split over the devices
print(f"H on one device: {float(one):.6f}   H on {mesh.devices.size}: {float(many):.6f}")
np.testing.assert_allclose(many, one, rtol=1e-6)

# Every estimator takes mesh=, and so do gradients:
dH = jaxinfo.delta_entropy(x[:100], x, h=0.015, mesh=mesh)
grad = jax.grad(lambda z: jaxinfo.entropy(z, h=0.015, mesh=mesh))(x[:200])
print("δH:", dH.shape, " dH/dx:", grad.shape)
