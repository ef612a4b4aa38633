"""Spreading kernel sums over several devices.

Query rows are split over a one-dimensional device mesh with ``jax.shard_map``; every device
holds the full reference set and computes the blocked log-sum-exp of its own queries, so the
numbers equal the single-device ones up to round-off: each device shifts its own query blocks
(whose boundaries differ from one device's), and the reference gradients are summed per device,
then across devices, in another order than one device's scan. The
gradient with respect to the replicated references is summed over devices by shard_map's
transpose, so ``jax.grad`` works unchanged.

Multi-host: after ``jax.distributed.initialize()`` on every host, ``jax.devices()`` lists the
devices of all hosts and :func:`data_mesh` spans them; pass global arrays (for example from
``jax.make_array_from_process_local_data``) and no other code changes.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

__all__ = ["DATA_AXIS", "data_mesh"]

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A one-dimensional mesh named ``"data"`` over ``devices`` (default: all devices).

    On a CPU-only machine, several host devices can be simulated for testing with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX is imported.
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("no devices given for the mesh")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


@functools.lru_cache(maxsize=64)
def _compiled(local_fn, mesh: Mesh, n_replicated: int):
    """jit(shard_map(local_fn)) for a mesh, built once per (function, mesh)."""
    return jax.jit(
        jax.shard_map(
            local_fn,
            mesh=mesh,
            in_specs=(PartitionSpec(DATA_AXIS),) + (PartitionSpec(),) * n_replicated,
            out_specs=PartitionSpec(None, DATA_AXIS),
            check_vma=False,
        )
    )


def sharded_map_queries(local_fn, mesh: Mesh, y, *replicated):
    """Applies ``local_fn(y_shard, *replicated) -> (n_h, m_shard)`` with y split over the mesh.

    The rows of ``y`` must already be a multiple of the device count (the kernel pads them to
    a size bucket first, so that nearby sizes share one compiled program). ``local_fn`` should
    be a long-lived function (not a fresh closure per call) so that the compiled program is
    reused.
    """
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh must have an axis named {DATA_AXIS!r}, got {mesh.axis_names}")
    n_devices = mesh.shape[DATA_AXIS]
    if y.shape[0] % n_devices:
        raise ValueError(f"{y.shape[0]} query rows do not split evenly over {n_devices} devices")
    return _compiled(local_fn, mesh, len(replicated))(y, *replicated)
