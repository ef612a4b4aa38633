"""The QUESTS descriptor as pure JAX functions.

For atom i with neighbours j (the k nearest, periodic images included) at distances r_ij,
the weight is ``w(r) = (1 - (r/rc)^2)^2`` for r < rc and 0 beyond, and the descriptor row is
``[x1 | x2]`` of width 2k - 1 (units 1/Angstrom):

* ``x1`` (k values): ``w(r_ij) / r_ij`` in descending order (nearest neighbour first);
* ``x2`` (k - 1 values): with ``S_jl = sqrt(w(r_ij) w(r_il)) / r_jl`` for j != l (zero on the
  diagonal and for empty slots), each row of S sorted in descending order with its smallest
  entry (the diagonal zero) dropped, averaged over the k rows (dividing by k).

Species-resolved layout (``species_descriptors``): ``[full | species_1 | species_2 | ...]``, each
block of width 2k - 1; block s is the descriptor computed from the atoms of species s alone,
and is zero in the rows of atoms of other species. Species are ordered as given (default: sorted
chemical symbols).

The functions here are pure: ``structure_descriptors(positions, cell, table)`` is jit-, vmap-
and grad-able with respect to positions and cell. Host planning (neighbour tables, padding to
size buckets) lives in :mod:`jaxinfo.neighbours` and :mod:`jaxinfo.batching`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxinfo.neighbours import NeighbourTable

__all__ = [
    "descriptor_width",
    "environment_descriptor",
    "environment_descriptors",
    "neighbour_vectors",
    "smooth_step",
    "smooth_structure_descriptors",
    "soft_sort_descending",
    "sort_descending",
    "structure_descriptors",
]

DEFAULT_K = 32
DEFAULT_CUTOFF = 5.0


def descriptor_width(k: int) -> int:
    """Number of columns of the descriptor for ``k`` neighbours: 2k - 1."""
    return 2 * k - 1


def _bitonic_stages(n: int):
    """(distance, descending-block mask) of each compare-exchange stage of a bitonic network."""
    stages = []
    size = 2
    while size <= n:
        distance = size // 2
        while distance >= 1:
            first_index = np.arange(n // (2 * distance)) * 2 * distance
            # Blocks of `size` alternate direction so that each merge sees a bitonic sequence.
            stages.append((distance, ((first_index & size) != 0)[:, None, None]))
            distance //= 2
        size *= 2
    return stages


def _pad_leading(values):
    """Pads axis 0 with -inf up to a power of two."""
    n = values.shape[0]
    padded = 1 << max(n - 1, 0).bit_length()
    if padded == n:
        return values
    pad = jnp.full((padded - n, *values.shape[1:]), -jnp.inf, dtype=values.dtype)
    return jnp.concatenate([values, pad], axis=0)


def _pairs(values, distance):
    """(n, B) -> the two halves (groups, distance, B) of each compare-exchange pair."""
    n = values.shape[0]
    pairs = values.reshape(n // (2 * distance), 2, distance, -1)
    return pairs[:, 0], pairs[:, 1]


def _join(upper, lower, n):
    return jnp.stack([upper, lower], axis=1).reshape(n, -1)


def _sort_leading(values):
    """Bitonic sort of (n, B) along axis 0, largest first (max/min network)."""
    n = values.shape[0]
    values = _pad_leading(values)
    padded = values.shape[0]
    for distance, ascending in _bitonic_stages(padded):
        upper, lower = _pairs(values, distance)
        high, low = jnp.maximum(upper, lower), jnp.minimum(upper, lower)
        values = _join(jnp.where(ascending, low, high), jnp.where(ascending, high, low), padded)
    return values[:n]


def _sort_leading_with_swaps(values):
    """As :func:`_sort_leading`, also returning each stage's swap mask (for the gradient)."""
    n = values.shape[0]
    values = _pad_leading(values)
    padded = values.shape[0]
    swaps = []
    for distance, ascending in _bitonic_stages(padded):
        upper, lower = _pairs(values, distance)
        swap = jnp.where(ascending, upper > lower, upper < lower)
        values = _join(jnp.where(swap, lower, upper), jnp.where(swap, upper, lower), padded)
        swaps.append(swap)
    return values[:n], swaps


@jax.custom_vjp
def _sort_descending_leading(values):
    return _sort_leading(values)


def _sort_forward(values):
    result, swaps = _sort_leading_with_swaps(values)
    return result, swaps


def _sort_backward(swaps, cotangent):
    n = cotangent.shape[0]
    cotangent = _pad_leading(cotangent)
    padded = cotangent.shape[0]
    stages = reversed(_bitonic_stages(padded))
    for (distance, _), swap in zip(stages, reversed(swaps), strict=True):
        upper, lower = _pairs(cotangent, distance)
        cotangent = _join(jnp.where(swap, lower, upper), jnp.where(swap, upper, lower), padded)
    return (cotangent[:n],)


_sort_descending_leading.defvjp(_sort_forward, _sort_backward)


def sort_descending(values: jax.Array, axis: int = -1) -> jax.Array:
    """Sorts along ``axis`` in descending order with a bitonic network.

    Compare-exchange stages of elementwise max/min on reshaped arrays, with the sorted axis
    leading so that the other axes vectorise: several times faster than ``jnp.sort`` on
    XLA:CPU for the short rows (k ~ 32) of the descriptor. The gradient replays the recorded
    exchanges backwards on the cotangent, so it costs about as much as the sort itself.

    Args:
        values: array of any shape.
        axis: the axis to sort.

    Returns:
        Array of the same shape, sorted from largest to smallest along ``axis``.
    """
    moved = jnp.moveaxis(values, axis, 0)
    shape = moved.shape
    flat = moved.reshape(shape[0], -1)
    result = _sort_descending_leading(flat).reshape(shape)
    return jnp.moveaxis(result, 0, axis)


def _safe_norm(vectors, mask, axis):
    """Euclidean norm along ``axis``, finite with finite gradients where ``mask`` is False."""
    squared = jnp.sum(vectors * vectors, axis=axis)
    squared = jnp.where(mask, squared, 1.0)
    return jnp.sqrt(squared)


def _descriptors_batch_last(vectors, mask, cutoff):
    """Descriptors with the environment axis last (vectorised over it).

    Args:
        vectors: (k, 3, B) neighbour vectors; mask: (k, B).

    Returns:
        (2k - 1, B) descriptors.
    """
    k = vectors.shape[0]
    distance = _safe_norm(vectors, mask, axis=1)  # (k, B)
    inside = mask & (distance < cutoff)
    # sqrt(w) = 1 - (r/rc)^2 inside the cutoff: no square root to differentiate.
    root_weight = jnp.where(inside, 1.0 - (distance / cutoff) ** 2, 0.0)
    x1 = _sort_descending_leading(root_weight**2 / distance)

    # pair[l, j, b]: neighbour l seen from neighbour j; each row j is sorted along l (axis 0).
    not_self = ~np.eye(k, dtype=bool)[:, :, None]
    pair_mask = inside[:, None, :] & inside[None, :, :] & not_self
    pair_distance = _safe_norm(vectors[:, None] - vectors[None, :], pair_mask, axis=2)
    pair_term = jnp.where(
        pair_mask, root_weight[:, None, :] * root_weight[None, :, :] / pair_distance, 0.0
    )
    rows = _sort_descending_leading(pair_term.reshape(k, -1)).reshape(k, k, -1)
    x2 = jnp.sum(rows[: k - 1], axis=1) / k
    return jnp.concatenate([x1, x2], axis=0)


def environment_descriptor(vectors: jax.Array, mask: jax.Array, cutoff: float = DEFAULT_CUTOFF):
    """Descriptor of one atomic environment.

    Args:
        vectors: (k, 3) neighbour vectors r_j - r_i in Angstrom, any order.
        mask: (k,) bool, False for empty slots (their vectors are ignored).
        cutoff: cutoff radius rc in Angstrom.

    Returns:
        (2k - 1,) array ``[x1 | x2]`` in 1/Angstrom, same dtype as ``vectors``.
    """
    return _descriptors_batch_last(vectors[..., None], mask[..., None], cutoff)[:, 0]


def neighbour_vectors(positions: jax.Array, cell: jax.Array, table: NeighbourTable):
    """Neighbour vectors of every atom, recomputed from positions and cell.

    Args:
        positions: (n_atoms, 3) Cartesian positions, Angstrom.
        cell: (3, 3) lattice vectors as rows, Angstrom.
        table: neighbour table of the structure.

    Returns:
        (n_atoms, k, 3) array of ``positions[j] + shift @ cell - positions[i]``.
    """
    positions = jnp.asarray(positions)
    shift = jnp.asarray(table.shift).astype(positions.dtype)
    return (
        positions[table.index] + shift @ jnp.asarray(cell, positions.dtype) - positions[:, None, :]
    )


def structure_descriptors(
    positions: jax.Array,
    cell: jax.Array,
    table: NeighbourTable,
    cutoff: float = DEFAULT_CUTOFF,
    *,
    chunk_size: int = 1024,
):
    """Descriptors of all atoms of one structure; differentiable in positions and cell.

    Args:
        positions: (n_atoms, 3) Cartesian positions, Angstrom.
        cell: (3, 3) lattice vectors as rows, Angstrom (ignored by non-periodic tables).
        table: :class:`~jaxinfo.neighbours.NeighbourTable` built for this structure.
        cutoff: cutoff radius in Angstrom (must match the table's).
        chunk_size: atoms processed at once; bounds memory at O(chunk_size * k^2).

    Returns:
        (n_atoms, 2k - 1) descriptor matrix. Rows whose table row is empty are zero.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from ase.build import bulk
        >>> from jaxinfo.neighbours import neighbour_table
        >>> atoms = bulk("Cu", "fcc", a=3.61)
        >>> table = neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, k=32, cutoff=5.0)
        >>> positions, cell = jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array)
        >>> x = structure_descriptors(positions, cell, table)
        >>> x.shape
        (1, 63)
    """
    vectors = neighbour_vectors(positions, cell, table)
    return environment_descriptors(vectors, jnp.asarray(table.mask), cutoff, chunk_size=chunk_size)


#: Default temperature of the soft sort of the smooth descriptor, 1/Å.
DEFAULT_SOFTNESS = 0.03
#: Default width of the membership and cutoff switches of the smooth descriptor, Å.
DEFAULT_SWITCH_WIDTH = 0.6
#: Bisection steps for the membership radius: the bracket (width wide) shrinks by 2^-30, and
#: the final Newton step squares the remaining relative error.
_BISECTION_STEPS = 30


def smooth_step(t):
    """C∞ step: 0 for t <= 0, 1 for t >= 1, ``S(t) + S(1 - t) = 1`` (finite gradients)."""
    t = jnp.clip(t, 1e-3, 1.0 - 1e-3)  # S is 0 or 1 to machine precision beyond
    return jax.nn.sigmoid(1.0 / (1.0 - t) - 1.0 / t)


def soft_sort_descending(values, softness: float, n_out: int | None = None):
    """Smooth, permutation-invariant relaxation of the descending sort (NeuralSort).

    Output slot p is a softmax-weighted average of the values,
    ``P[p, j] ∝ exp(((n - 1 - 2p) a_j - Σ_l |a_j - a_l|_ε) / τ)``, with the smooth absolute
    value ``|u|_ε = u tanh(u / ε)``, ε = τ/4 (exact at ties and for |u| >> ε, so clusters of
    tied values are not penalised). The score margin of the right value in each slot is its
    gap to the next value: values further apart than a few τ come out sorted to within
    ``exp(-gap / τ)``; tied values come out equal. C∞ in the values.

    Args:
        values: (..., n) array.
        softness: τ, in the units of the values (> 0).
        n_out: leading slots to return (default n).

    Returns:
        (..., n_out) array, largest first.
    """
    n = values.shape[-1]
    n_out = n if n_out is None else n_out
    difference = values[..., :, None] - values[..., None, :]
    spread = jnp.sum(difference * jnp.tanh(difference * (4.0 / softness)), axis=-1)
    slope = jnp.asarray(n - 1 - 2 * np.arange(n_out), values.dtype)
    scores = (slope[:, None] * values[..., None, :] - spread[..., None, :]) / softness
    weights = jax.nn.softmax(scores, axis=-1)  # (..., n_out, n)
    # A product and a sum, not einsum: XLA:CPU differentiates many tiny matvecs ~4x slower.
    return jnp.sum(weights * values[..., None, :], axis=-1)


def _membership_radius(distance, mask, k, cutoff, width):
    """Per-atom radius ρ_i with ``Σ_j m_ij = k`` (see :func:`smooth_structure_descriptors`).

    Args:
        distance: (n, K) Å; mask: (n, K).

    Returns:
        (n,) Å; gradient by the implicit function theorem (zero where the count is flat).
    """

    def count(radius, distance):
        member = smooth_step(0.5 + (radius[:, None] - distance) / width)
        # A wall of k members just beyond rc: atoms with fewer than k neighbours keep them all.
        wall = smooth_step(0.5 + (radius - cutoff - width) / width)
        return jnp.sum(jnp.where(mask, member, 0.0), axis=1) + k * wall

    fixed = jax.lax.stop_gradient(distance)
    # ρ lies within width / 2 of c = min(r_(k), rc + width): count(c - width/2) <= k - 1
    # (nothing from r_(k) on counts yet), count(c + width/2) >= k (the k nearest, or the wall).
    kth = -jax.lax.top_k(-jnp.where(mask, fixed, jnp.inf), k)[0][:, -1]
    centre = jnp.minimum(kth, cutoff + width)
    low, high = centre - 0.5 * width, centre + 0.5 * width
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        below = count(middle, fixed) < k
        low, high = jnp.where(below, middle, low), jnp.where(below, high, middle)
    radius = jax.lax.stop_gradient(high)
    slope = jax.grad(lambda r: jnp.sum(count(r, fixed)))(radius)
    slope = jax.lax.stop_gradient(jnp.maximum(slope, 1e-6 / width))
    # One Newton step: the value stays (residual ~ 0), the gradient is -∂count/∂r / ∂count/∂ρ.
    return radius - (count(radius, distance) - k) / slope


def _smooth_environment_descriptors(vectors, mask, cutoff, k, softness, width):
    """(B, K, 3) neighbour vectors, (B, K) mask -> (B, 2k - 1) smooth descriptors."""
    distance = _safe_norm(vectors, mask, axis=-1)
    far = jnp.where(mask, distance, 2.0 * cutoff)
    radius = _membership_radius(far, mask, k, cutoff, width)
    member = jnp.where(mask, smooth_step(0.5 + (radius[:, None] - far) / width), 0.0)
    # sqrt of the weight: (1 - (r/rc)^2), switched off C∞ between rc - width and rc.
    switch = smooth_step((cutoff - far) / width)
    root_weight = jnp.where(mask, (1.0 - (far / cutoff) ** 2) * switch, 0.0)
    x1 = soft_sort_descending(root_weight**2 / distance, softness, k)

    n_slots = vectors.shape[1]
    not_self = ~np.eye(n_slots, dtype=bool)
    pair_mask = mask[:, :, None] & mask[:, None, :] & not_self
    pair_distance = _safe_norm(vectors[:, :, None] - vectors[:, None, :], pair_mask, axis=-1)
    pair_term = jnp.where(
        pair_mask, root_weight[:, :, None] * root_weight[:, None, :] / pair_distance, 0.0
    )
    rows = soft_sort_descending(pair_term * member[:, None, :], softness, k - 1)
    x2 = jnp.einsum("bj,bjp->bp", member, rows) / k
    return jnp.concatenate([x1, x2], axis=1)


def smooth_structure_descriptors(
    positions: jax.Array,
    cell: jax.Array,
    table: NeighbourTable,
    cutoff: float = DEFAULT_CUTOFF,
    *,
    k: int | None = None,
    softness: float = DEFAULT_SOFTNESS,
    switch_width: float = DEFAULT_SWITCH_WIDTH,
    chunk_size: int = 64,
):
    """A smooth (C∞ in positions and cell) variant of the descriptor, for forces.

    The standard descriptor is continuous in x1 but not smooth: its sorts make the gradient
    jump wherever two entries swap ranks, and x2 jumps when neighbour ranks k and k + 1 swap
    inside the cutoff (the pair terms of a different neighbour enter). In MD (biased MD,
    generation) value jumps are energy errors independent of dt and gradient jumps errors
    ∝ dt per crossing. Here, over all neighbours in the table:

    * sorts: :func:`soft_sort_descending` with temperature ``softness``; x1 is the top k of
      the soft-sorted ``w(r)/r`` of all neighbours (the k nearest when separated);
    * k nearest: neighbour j is a member with ``m_j = S(1/2 + (ρ_i - r_ij) / width)`` (S a C∞
      step), where ρ_i solves ``Σ_j m_j = k``; row j of the pair terms ``m_l S_jl`` is
      soft-sorted over l and x2 is ``Σ_j m_j row_j / k``. Members are the k nearest when
      ``r_(k+1) - r_(k) >= width``; a shell straddling rank k + 1 shares the k memberships;
    * cutoff: ``sqrt(w) = 1 - (r/rc)²`` is switched off C∞ between rc - width and rc.

    Equals the standard descriptor up to ``exp(-gap / softness)`` (gap: the smallest spacing
    of sorted entries) when ``r_(k+1) - r_(k) >= width`` and the k nearest lie within
    rc - width; tends to it as ``softness, switch_width -> 0``. Pure JAX, jit-able, finite
    gradients at ties and on padded slots. Costs O(K² k) per atom for a table of K slots
    (the soft sort of the pair-term rows) against O(k² log² k) for the standard descriptor.

    Args:
        positions: (n_atoms, 3) Cartesian positions, Å.
        cell: (3, 3) lattice vectors as rows, Å.
        table: a table of K >= k + 1 slots, any order, holding every neighbour closer than
            ``r_(k+1) + width`` (the ones further out do not matter when their w(r)/r is
            well below the k-th): e.g. ``neighbour_list(2 * k, rc).update(...).table``.
        cutoff: rc in Å.
        k: descriptor neighbours (default ``table.k - 1``).
        softness: soft-sort temperature τ, 1/Å (> 0; the entries are ~0.01-1 1/Å).
        switch_width: width of the membership and cutoff switches, Å (0 < width < rc / 2).
        chunk_size: atoms processed at once (memory O(chunk_size · K² k), recomputed in the
            backward pass).

    Returns:
        (n_atoms, 2k - 1) descriptors, 1/Å.
    """
    k = table.k - 1 if k is None else int(k)
    if not 1 <= k < table.k:
        raise ValueError(f"the table needs at least k + 1 = {k + 1} slots, got {table.k}")
    cutoff, softness, width = float(cutoff), float(softness), float(switch_width)
    if not (softness > 0 and 0 < width < cutoff / 2):
        raise ValueError(
            f"need softness > 0 and 0 < switch_width < cutoff / 2, got {softness}, {width}"
        )
    vectors = neighbour_vectors(positions, cell, table)
    mask = jnp.asarray(table.mask)
    n_env = vectors.shape[0]
    chunk = max(1, min(int(chunk_size), n_env))
    n_chunks = -(-n_env // chunk)
    padding = n_chunks * chunk - n_env
    vectors = jnp.pad(vectors, [(0, padding), (0, 0), (0, 0)]).reshape(n_chunks, chunk, -1, 3)
    mask = jnp.pad(mask, [(0, padding), (0, 0)]).reshape(n_chunks, chunk, -1)

    @jax.checkpoint
    def one_chunk(args):
        return _smooth_environment_descriptors(*args, cutoff, k, softness, width)

    x = jax.lax.map(one_chunk, (vectors, mask))
    return x.reshape(n_chunks * chunk, -1)[:n_env]


def environment_descriptors(
    vectors, mask, cutoff: float = DEFAULT_CUTOFF, *, chunk_size: int = 1024
):
    """Descriptors of a flat list of environments, ``chunk_size`` at a time.

    The gradient recomputes each chunk instead of storing it, so the backward pass has the
    same memory bound.

    Args:
        vectors: (n_env, k, 3) neighbour vectors, Angstrom.
        mask: (n_env, k) bool, False for empty slots.
        cutoff: cutoff radius in Angstrom.
        chunk_size: environments processed at once (memory O(chunk_size * k^2)).

    Returns:
        (n_env, 2k - 1) descriptor matrix.
    """
    return _chunked_descriptors(vectors, mask, float(cutoff), int(chunk_size))


#: Environments per chunk in the backward pass: its residuals (the sorting network's
#: exchanges) then stay in cache, which makes it ~2x faster than at the forward's 1024.
_BACKWARD_CHUNK = 128


def _to_chunks(chunk, *arrays):
    """(n_env, ...) arrays -> (n_chunks, ..., chunk), zero-padded, environments last."""
    n_env = arrays[0].shape[0]
    n_chunks = -(-n_env // chunk)
    padding = n_chunks * chunk - n_env
    out = []
    for a in arrays:
        a = jnp.pad(a, [(0, padding)] + [(0, 0)] * (a.ndim - 1))
        a = a.reshape(n_chunks, chunk, *a.shape[1:])
        out.append(jnp.moveaxis(a, 1, -1))
    return out


def _from_chunks(a, n_env):
    """(n_chunks, ..., chunk) -> (n_env, ...)."""
    a = jnp.moveaxis(a, -1, 1)
    return a.reshape(-1, *a.shape[2:])[:n_env]


def _map_chunks(vectors, mask, cutoff, chunk_size):
    n_env = vectors.shape[0]
    vectors, mask = _to_chunks(max(1, min(chunk_size, n_env)), vectors, mask)

    def one_chunk(args):
        return _descriptors_batch_last(*args, cutoff)

    return _from_chunks(jax.lax.map(one_chunk, (vectors, mask)), n_env)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _chunked_descriptors(vectors, mask, cutoff, chunk_size):
    return _map_chunks(vectors, mask, cutoff, chunk_size)


def _chunked_forward(vectors, mask, cutoff, chunk_size):
    return _map_chunks(vectors, mask, cutoff, chunk_size), (vectors, mask)


def _chunked_backward(cutoff, chunk_size, residuals, cotangent):
    vectors, mask = residuals
    n_env = vectors.shape[0]
    chunk = max(1, min(chunk_size, _BACKWARD_CHUNK, n_env))
    chunks = _to_chunks(chunk, vectors, mask, cotangent)

    def one_chunk(args):
        vectors_c, mask_c, cotangent_c = args
        _, pullback = jax.vjp(lambda v: _descriptors_batch_last(v, mask_c, cutoff), vectors_c)
        return pullback(cotangent_c)[0]

    return _from_chunks(jax.lax.map(one_chunk, chunks), n_env), None


_chunked_descriptors.defvjp(_chunked_forward, _chunked_backward)
