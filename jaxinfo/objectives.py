"""Information objectives as pure functions, and a growing reference set of fixed capacity.

A :class:`Reference` holds descriptors in a buffer of static capacity: empty slots have
log-weight ``-inf`` (they add nothing to any kernel sum), ``count`` says how many are filled and
``overflow`` is set, as in jax-md's neighbour lists, when :func:`reference_add` had no room. So
a generation or MD loop can grow its reference inside ``jax.lax.scan`` with static shapes.

Objectives of descriptors x (n, 2k − 1) against a reference (nats):

* :func:`information` ``kind="mean"`` / ``"max"``: mean or max over the rows of
  δH(x_i | ref) = −log Σ_j K(x_i, x_j), each optionally saturated as ``s·tanh(δH_i / s)``;
* ``kind="entropy"``: the entropy H(ref ∪ x) of the reference together with the new rows
  (only the terms involving x are recomputed: the reference keeps its own log kernel sums).

Compose them with :func:`jaxinfo.descriptor.structure_descriptors` to get objectives of
positions and cell, differentiable with ``jax.grad``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxinfo._validation import check_bandwidth, check_cutoff, check_k, check_positive
from jaxinfo.descriptor import DEFAULT_CUTOFF, structure_descriptors
from jaxinfo.kernels import log_kernel_sums

__all__ = [
    "DESCRIPTOR_SKIN",
    "INFORMATION_KINDS",
    "Reference",
    "delta_entropies",
    "information",
    "reference_add",
    "reference_init",
    "structure_information",
]

INFORMATION_KINDS = ("mean", "max", "entropy")
#: Extra radius (Å) of the candidate lists behind descriptor tables in generation and MD.
DESCRIPTOR_SKIN = 0.5


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Reference:
    """Reference descriptors in a fixed-capacity buffer (a pytree).

    Attributes:
        x: (capacity, d) descriptors, 1/Å; rows beyond ``count`` are zero.
        log_weights: (capacity,) 0 for filled rows, ``-inf`` for empty ones.
        self_log_sums: (capacity,) log Σ_j K(x_i, x_j) over the filled rows j (0 when empty).
        count: int32 scalar, filled rows.
        overflow: bool scalar, True once an addition did not fit (it was dropped).
    """

    x: jax.Array
    log_weights: jax.Array
    self_log_sums: jax.Array
    count: jax.Array
    overflow: jax.Array

    @property
    def capacity(self) -> int:
        return self.x.shape[0]


def reference_init(x0, capacity: int, h: float) -> Reference:
    """A :class:`Reference` holding the (n0, d) descriptors ``x0`` (n0 may be 0) with room for
    ``capacity`` rows in all (>= n0, >= 1), in x0's floating dtype; ``h`` (1/Å) is the
    bandwidth of its self kernel sums."""
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(float)
    n0, d = x0.shape
    if capacity < max(n0, 1):
        raise ValueError(f"capacity ({capacity}) must be >= the initial rows ({n0}) and >= 1")
    empty = Reference(
        x=jnp.zeros((capacity, d), x0.dtype),
        log_weights=jnp.full(capacity, -jnp.inf, x0.dtype),
        self_log_sums=jnp.zeros(capacity, x0.dtype),
        count=jnp.zeros((), jnp.int32),
        overflow=jnp.zeros((), bool),
    )
    return empty if n0 == 0 else reference_add(empty, x0, h)


def reference_add(reference: Reference, x, h: float) -> Reference:
    """The :class:`Reference` with the (n, d) descriptors x appended (pure, jit-able; h in
    1/Å); if they do not fit, the reference unchanged with ``overflow`` set."""
    x = jnp.asarray(x, reference.x.dtype)
    n, start = x.shape[0], reference.count
    fits = start + n <= reference.capacity
    ref = jax.lax.dynamic_update_slice(reference.x, x, (start, jnp.zeros_like(start)))
    log_w = jax.lax.dynamic_update_slice(reference.log_weights, jnp.zeros(n, x.dtype), (start,))
    old = jnp.logaddexp(reference.self_log_sums, log_kernel_sums(ref, x, h))
    new_rows = log_kernel_sums(x, ref, h, log_weights=log_w)
    sums = jax.lax.dynamic_update_slice(old, new_rows, (start,))
    sums = jnp.where(jnp.isfinite(log_w), sums, 0.0)
    added = Reference(ref, log_w, sums, start + n, reference.overflow)
    kept = dataclasses.replace(reference, overflow=jnp.asarray(True))
    return jax.tree.map(lambda a, b: jnp.where(fits, a, b), added, kept)


def delta_entropies(x, reference: Reference, h: float) -> jax.Array:
    """(n,) δH(x_i | reference) = −log Σ_j K(x_i, x_j), nats."""
    return -log_kernel_sums(x, reference.x, h, log_weights=reference.log_weights)


def information(x, reference: Reference, h: float, kind: str = "mean", saturation=None):
    """Information of new descriptors x against a reference, nats (pure, differentiable).

    Args:
        x: (n, d) descriptors, 1/Å.
        reference: a :class:`Reference`.
        h: bandwidth, 1/Å.
        kind: ``"mean"`` or ``"max"`` of δH(x_i | reference), or ``"entropy"`` of the union.
        saturation: s in nats or None; for mean/max each δH_i becomes ``s·tanh(δH_i / s)``.

    Returns:
        Scalar, nats.
    """
    if kind in ("mean", "max"):
        delta = delta_entropies(x, reference, h)
        if saturation is not None:
            delta = saturation * jnp.tanh(delta / saturation)
        return jnp.mean(delta) if kind == "mean" else jnp.max(delta)
    if kind != "entropy":
        raise ValueError(f"information kind must be one of {INFORMATION_KINDS}, got {kind!r}")
    valid = jnp.isfinite(reference.log_weights)
    log_p_ref = jnp.logaddexp(reference.self_log_sums, log_kernel_sums(reference.x, x, h))
    log_p_new = jnp.logaddexp(
        log_kernel_sums(x, reference.x, h, log_weights=reference.log_weights),
        log_kernel_sums(x, x, h),
    )
    total = (reference.count + x.shape[0]).astype(x.dtype)
    summed = jnp.sum(jnp.where(valid, log_p_ref, 0.0)) + jnp.sum(log_p_new)
    return jnp.log(total) - summed / total


def structure_information(
    positions, cell, table, reference: Reference, h: float, kind: str = "mean", *,
    saturation=None, cutoff: float = DEFAULT_CUTOFF,
):  # fmt: skip
    """:func:`information` (nats) of a structure's environments: a pure function of positions
    (n_atoms, 3) Å and cell (3, 3) Å, differentiable in both, e.g. for ``jax.grad``.

    ``table`` is the structure's descriptor table (e.g. ``neighbour_list(...).update(...)
    .table``) and ``cutoff`` the descriptor cutoff in Å; the other arguments are those of
    :func:`information`.
    """
    x = structure_descriptors(positions, cell, table, cutoff)
    return information(x, reference, h, kind, saturation)


def check_information_settings(settings) -> None:
    """Checks and normalises, in place, the ``h`` (one bandwidth, 1/Å), ``k``, ``cutoff`` (Å)
    and ``saturation`` (nats > 0, or None) fields of a frozen settings dataclass."""
    h = check_bandwidth(settings.h)
    if h.ndim != 0:
        raise ValueError(f"a scalar bandwidth h is needed here, got shape {h.shape}")
    saturation = settings.saturation
    checked = dict(
        h=float(h), k=check_k(settings.k), cutoff=check_cutoff(settings.cutoff),
        saturation=None if saturation is None else check_positive("saturation", saturation),
    )  # fmt: skip
    for name, value in checked.items():
        object.__setattr__(settings, name, value)


def planned_reference(x0, width: int, room: int, h: float, dtype) -> Reference:
    """A :class:`Reference` (host-side plan) holding the rows of ``x0``, checked to have shape
    (N, width), with space for ``room`` more rows, in ``dtype``."""
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[1] != width:
        raise ValueError(f"reference descriptors must have shape (N, {width}), got {x0.shape}")
    return reference_init(jnp.asarray(x0, dtype), max(len(x0) + room, 1), h)
