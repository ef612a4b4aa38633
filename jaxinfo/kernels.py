"""Blocked Gaussian kernel sums in log space.

The one numerical primitive behind every estimator:

    L[b, i] = log sum_j w_j exp(-||y_i - x_j||^2 / (2 h_b^2))

computed block by block with a running log-sum-exp, so no (M, N) matrix is ever held: peak
memory is O(block^2 * n_bandwidths), set by ``block_size``, not by M or N. Distances come from
one matrix multiply per block (||y||^2 + ||x||^2 - 2 y.x on centred data), computed once for all
bandwidths.

The gradient is a custom VJP that recomputes each block in the backward pass (never storing the
forward's blocks), so the backward pass has the same memory bound as the forward. Gradients flow
to queries, references, log-weights and bandwidths.

Shapes are padded to a few buckets (``padded_length``) so a new dataset size rarely recompiles.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinfo._validation import check_bandwidth

__all__ = ["DEFAULT_BLOCK_SIZE", "log_kernel_sums", "padded_length"]

#: Rows and columns per block. 1024 x 1024 x float32 is 4 MiB per bandwidth.
DEFAULT_BLOCK_SIZE = 1024
_MIN_BLOCK = 8


def padded_length(n: int, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[int, int]:
    """Returns ``(block, n_blocks)`` for n rows: a block and a bucketed block count.

    Below ``block_size`` rows one block of the next power of two (>= 8) is used. Above, up to
    15 blocks are used as they are; beyond, the count is rounded up to a multiple of 2^(a-3)
    for 2^a <= count < 2^(a+1) (8 buckets per doubling), so padding adds at most 1/8 of the
    rows and nearby sizes share one compilation.
    """
    if n <= block_size:
        block = max(_MIN_BLOCK, 1 << (int(n) - 1).bit_length())
        return min(block, block_size), 1
    blocks = -(-n // block_size)
    step = 1 << max(blocks.bit_length() - 4, 0)
    return block_size, -(-blocks // step) * step


def _block_logits(y, y_sq, x, x_sq, log_w, scale, same_rows):
    """(nb, By, Bx) logits -scale_b * d2_ij + log w_j and the (By, Bx) squared distances.

    ``same_rows`` (By, Bx) bool marks pairs that are the same row of one set (self pairs):
    their distance is exactly 0, where the expansion would leave float32 round-off of
    ~1e-8, i.e. a spurious +2e-5 in dH(x | X) at h = 0.015.
    """
    d2 = y_sq[:, None] + x_sq[None, :] - 2.0 * (y @ x.T)
    d2 = jnp.where(same_rows, 0.0, jnp.maximum(d2, 0.0))
    return -scale[:, None, None] * d2[None] + log_w[None, None, :], d2


def _same_rows(query_ids, reference_ids, self_pairs):
    if not self_pairs:
        return False
    return query_ids[:, None] == reference_ids[None, :]


def _squared_norms(a):
    """(n, d) -> (n,) row sums of squares, by pairwise halving: unlike ``jnp.sum``, whose
    vectorisation (and so round-off) XLA chooses by the number of rows, each row's result
    is the same however many rows there are, so a query sharded over devices gets the
    single-device number."""
    squares = a * a
    while squares.shape[-1] > 1:
        half = squares.shape[-1] // 2
        paired = squares[:, :half] + squares[:, half : 2 * half]
        squares = jnp.concatenate([paired, squares[:, 2 * half :]], axis=1)
    return squares[:, 0]


def _blocks(y, x, log_w, first_row, block_y, block_x):
    """Splits padded arrays into blocks: (query blocks, reference blocks), with row ids."""
    y_sq = _squared_norms(y)
    x_sq = _squared_norms(x)
    query_ids = first_row + jnp.arange(y.shape[0], dtype=jnp.int32)
    reference_ids = jnp.arange(x.shape[0], dtype=jnp.int32)
    queries = (
        y.reshape(-1, block_y, y.shape[-1]),
        y_sq.reshape(-1, block_y),
        query_ids.reshape(-1, block_y),
    )
    references = (
        x.reshape(-1, block_x, x.shape[-1]),
        x_sq.reshape(-1, block_x),
        log_w.reshape(-1, block_x),
        reference_ids.reshape(-1, block_x),
    )
    return queries, references


def _forward(y, x, log_w, scale, first_row, block_y, block_x, self_pairs):
    """Blocked log-sum-exp; y (M, d), x (N, d) padded to the blocks; returns (nb, M)."""
    n_bw = scale.shape[0]
    queries, references = _blocks(y, x, log_w, first_row, block_y, block_x)

    def query_block(args):
        yb, yb_sq, yb_ids = args

        def step(running, ref):
            xb, xb_sq, wb, xb_ids = ref
            same = _same_rows(yb_ids, xb_ids, self_pairs)
            logits, _ = _block_logits(yb, yb_sq, xb, xb_sq, wb, scale, same)
            peak = jnp.max(logits, axis=-1)
            peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
            block_lse = jnp.log(jnp.sum(jnp.exp(logits - peak[..., None]), axis=-1)) + peak
            return jnp.logaddexp(running, block_lse), None

        start = jnp.full((n_bw, yb.shape[0]), -jnp.inf, dtype=y.dtype)
        total, _ = jax.lax.scan(step, start, references)
        return total

    out = jax.lax.map(query_block, queries)  # (n_yblocks, nb, By)
    return jnp.moveaxis(out, 1, 0).reshape(n_bw, -1)


class _Needed(NamedTuple):
    """Which of (y, x, log_w, scale) the caller differentiates (static, known at trace time)."""

    y: bool
    x: bool
    log_w: bool
    scale: bool


jax.tree_util.register_static(_Needed)


def _with_ones(a):
    """(..., n, d) -> (..., n, d + 1): one matrix product then gives ``m @ a`` and the sums of
    ``m`` together."""
    return jnp.concatenate([a, jnp.ones((*a.shape[:-1], 1), a.dtype)], axis=-1)


def _backward(y, x, log_w, scale, first_row, lse, cotangent, block_y, block_x, self_pairs, needed):
    """Cotangents for (y, x, log_w, scale), recomputing each block; None where not needed.

    ``d/dy_i = sum_j m_ij (x_j - y_i)`` and ``d/dx_j = sum_i m_ij (y_i - x_j)`` with
    ``m_ij = 2 sum_b scale_b g_bi exp(logit_bij - lse_bi)``: the sums ``m @ x`` and ``m.T @ y``
    and the row and column sums of m come from products with [x | 1] and [y | 1].
    """
    d = y.shape[-1]
    queries, references = _blocks(y, x, log_w, first_row, block_y, block_x)
    lse_blocks = jnp.moveaxis(lse.reshape(lse.shape[0], -1, block_y), 1, 0)
    cotangent_blocks = jnp.moveaxis(cotangent.reshape(cotangent.shape[0], -1, block_y), 1, 0)
    # [y | 1] transposed, (d + 1, By): XLA:CPU multiplies ``[y | 1].T @ m`` about twice as
    # fast as ``m.T @ [y | 1]``.
    queries = (*queries, jnp.swapaxes(_with_ones(queries[0]), 1, 2), lse_blocks, cotangent_blocks)
    references = (*references, _with_ones(references[0]))
    two_scale = 2.0 * scale
    zero = jnp.zeros((), y.dtype)

    def query_block(carry, args):
        yb, yb_sq, yb_ids, yb_ones_t, lse_b, g_b = args

        def step(carry_y, ref):
            xb, xb_sq, wb, xb_ids, xb_ones = ref
            same = _same_rows(yb_ids, xb_ids, self_pairs)
            logits, d2 = _block_logits(yb, yb_sq, xb, xb_sq, wb, scale, same)
            # Weighted softmax of each query over the references, times the cotangent.
            weights = g_b[..., None] * jnp.exp(logits - lse_b[..., None])  # (nb, By, Bx)
            mixed = jnp.tensordot(two_scale, weights, axes=1)  # (By, Bx)
            sum_y = carry_y + mixed @ xb_ones if needed.y else carry_y
            per_reference = (
                yb_ones_t @ mixed if needed.x else zero,  # (d + 1, Bx)
                jnp.sum(weights, axis=(0, 1)) if needed.log_w else zero,
                -jnp.sum(weights * d2[None], axis=(1, 2)) if needed.scale else zero,
            )
            return sum_y, per_reference

        start = jnp.zeros((yb.shape[0], d + 1) if needed.y else (), y.dtype)
        sum_y, (sum_x, grad_w, grad_scale) = jax.lax.scan(step, start, references)
        grad_yb = sum_y[:, :d] - sum_y[:, d:] * yb if needed.y else zero
        carry = (
            carry[0] + jnp.moveaxis(sum_x, 0, 1).reshape(d + 1, -1) if needed.x else carry[0],
            carry[1] + grad_w.reshape(carry[1].shape) if needed.log_w else carry[1],
            carry[2] + jnp.sum(grad_scale, axis=0) if needed.scale else carry[2],
        )
        return carry, grad_yb

    start = (
        jnp.zeros((d + 1, x.shape[0]) if needed.x else (), x.dtype),
        jnp.zeros_like(log_w) if needed.log_w else zero,
        jnp.zeros_like(scale) if needed.scale else zero,
    )
    (sum_x, grad_w, grad_scale), grad_y = jax.lax.scan(query_block, start, queries)
    return (
        grad_y.reshape(y.shape) if needed.y else None,
        sum_x[:d].T - sum_x[d:].T * x if needed.x else None,
        grad_w if needed.log_w else None,
        grad_scale if needed.scale else None,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _log_kernel_sums_padded(y, x, log_w, scale, first_row, block_y, block_x, self_pairs):
    return _forward(y, x, log_w, scale, first_row, block_y, block_x, self_pairs)


def _fwd(y, x, log_w, scale, first_row, block_y, block_x, self_pairs):
    # symbolic_zeros: each argument comes with whether it is perturbed, so the backward pass
    # skips the cotangents nobody asked for (of log-weights and bandwidths, usually).
    needed = _Needed(y.perturbed, x.perturbed, log_w.perturbed, scale.perturbed)
    y, x, log_w, scale, first_row = (a.value for a in (y, x, log_w, scale, first_row))
    lse = _forward(y, x, log_w, scale, first_row, block_y, block_x, self_pairs)
    return lse, (y, x, log_w, scale, first_row, lse, needed)


def _bwd(block_y, block_x, self_pairs, residuals, cotangent):
    *arrays, lse, needed = residuals
    grads = _backward(*arrays, lse, cotangent, block_y, block_x, self_pairs, needed)
    return (*grads, None)


_log_kernel_sums_padded.defvjp(_fwd, _bwd, symbolic_zeros=True)

_log_kernel_sums_jit = jax.jit(_log_kernel_sums_padded, static_argnums=(5, 6, 7))


def _pad_rows(a, n, value=0.0):
    widths = [(0, n - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    if isinstance(a, np.ndarray):
        return np.pad(a, widths, constant_values=value)
    return jnp.pad(a, widths, constant_values=value)


def _is_concrete(*arrays):
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def _centre(y, x):
    """Subtracts the mean of x from y and x (distances are translation invariant; centring
    keeps ||y||^2 + ||x||^2 - 2 y.x accurate).

    Concrete inputs are centred with numpy on the host, the mean taken in float64 (no
    per-shape eager XLA compilations); traced ones (under a user's jit or grad) with jnp.
    """
    if _is_concrete(y, x):
        y_host, x_host = np.asarray(y), np.asarray(x)
        centre = x_host.astype(np.float64).mean(axis=0)
        x_centred = (x_host - centre).astype(x_host.dtype)
        return x_centred if y is x else (y_host - centre).astype(y_host.dtype), x_centred
    centre = jax.lax.stop_gradient(jnp.mean(x, axis=0))
    return y - centre, x - centre


def _log_kernel_sums(y, x, h, log_weights, block_size, *, self_pairs=False, first_row=0):
    """Sums of centred y and x; pads to bucketed block counts outside jit, so sizes in one
    bucket share a compilation (with numpy for concrete inputs, jnp for traced ones)."""
    block_y, n_y = padded_length(y.shape[0], block_size)
    block_x, n_x = padded_length(x.shape[0], block_size)
    if _is_concrete(y, x, log_weights):
        y, x, log_weights = np.asarray(y), np.asarray(x), np.asarray(log_weights)
    y_padded = _pad_rows(y, block_y * n_y)
    x_padded = _pad_rows(x, block_x * n_x)
    log_w = _pad_rows(log_weights, block_x * n_x, value=-np.inf)
    scale = 1.0 / (2.0 * jnp.atleast_1d(h) ** 2)
    first_row = jnp.asarray(first_row, dtype=jnp.int32)
    lse = _log_kernel_sums_jit(
        y_padded, x_padded, log_w, scale, first_row, block_y, block_x, bool(self_pairs)
    )
    return lse[:, : y.shape[0]]


@functools.cache
def _per_device_kernel(block_size: int, self_pairs: bool):
    """The per-device body for :func:`jaxinfo.sharding.sharded_map_queries` (one per setting,
    so the sharded computation is traced and compiled once, not on every call)."""
    from jaxinfo.sharding import DATA_AXIS

    def local(y_shard, x_all, h_all, w_all):
        first_row = jax.lax.axis_index(DATA_AXIS) * y_shard.shape[0]
        return _log_kernel_sums(
            y_shard, x_all, h_all, w_all, block_size, self_pairs=self_pairs, first_row=first_row
        )

    return local


def _as_float_array(a):
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.zeros(()).dtype)
    return a


def _check_pair(y, x):
    if y.ndim != 2 or x.ndim != 2:
        raise ValueError(
            "descriptors must be 2-D arrays (n, d); "
            f"got shapes {tuple(y.shape)} and {tuple(x.shape)}"
        )
    if y.shape[0] == 0 or x.shape[0] == 0:
        raise ValueError("descriptor set is empty: it has no rows")
    if y.shape[1] != x.shape[1]:
        raise ValueError(
            f"descriptor widths differ: {y.shape[1]} columns against {x.shape[1]} "
            "(computed with different k or a species-resolved layout?)"
        )
    for a in (y,) if y is x else (y, x):
        if isinstance(a, jax.core.Tracer):
            continue
        finite = np.isfinite(np.asarray(a)).all(axis=1)
        if not finite.all():
            raise ValueError(f"descriptors contain NaN or inf (row {int(np.argmin(finite))})")


def _check_bandwidth_value(h):
    """Validates concrete bandwidths; traced ones (under jit or grad) pass through."""
    if isinstance(h, jax.core.Tracer):
        return jnp.asarray(h)
    check_bandwidth(h)
    return h


def log_kernel_sums(y, x, h, *, log_weights=None, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Log of Gaussian kernel sums of each query over a reference set.

    ``L[i] = log sum_j w_j exp(-||y_i - x_j||^2 / (2 h^2))``, blocked, in log space.

    Args:
        y: (M, d) query descriptors.
        x: (N, d) reference descriptors.
        h: bandwidth (1/Angstrom), a scalar or a 1-D array of n_h bandwidths.
        log_weights: optional (N,) log-weights of the references (default 0: unit weights);
            ``-inf`` removes a reference.
        block_size: rows and columns per block; peak memory ~ n_h * block_size^2 floats.
        mesh: optional ``jax.sharding.Mesh`` with an axis ``"data"`` (see
            :func:`jaxinfo.sharding.data_mesh`): queries are split over its devices. Values
            and query gradients equal one device's; reference gradients are summed in
            another order (float32 ~6e-7 relative, float64 ~1e-15).

    Returns:
        (M,) for scalar h, (M, n_h) for 1-D h, in the floating dtype of the inputs.
    """
    self_pairs = y is x
    y = _as_float_array(y)
    x = y if self_pairs else _as_float_array(x)
    _check_pair(y, x)
    h = _check_bandwidth_value(h)
    dtype = jnp.result_type(y.dtype, x.dtype)
    y, x = y.astype(dtype), x.astype(dtype)
    h_array = jnp.asarray(h, dtype=dtype)
    if log_weights is None:
        log_weights = jnp.zeros(x.shape[0], dtype=dtype)
    else:
        log_weights = jnp.asarray(log_weights, dtype=dtype)
        if log_weights.shape != (x.shape[0],):
            raise ValueError(
                f"log_weights must have shape ({x.shape[0]},), got {tuple(log_weights.shape)}"
            )
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    block_size = int(block_size)
    # Centred before any sharding, so that every device sees the numbers one device would.
    y, x = _centre(y, x)
    if mesh is None:
        lse = _log_kernel_sums(y, x, h_array, log_weights, block_size, self_pairs=self_pairs)
    else:
        from jaxinfo.sharding import sharded_map_queries

        local = _per_device_kernel(block_size, self_pairs)
        lse = sharded_map_queries(local, mesh, y, x, h_array, log_weights)
    return lse[0] if h_array.ndim == 0 else lse.T
