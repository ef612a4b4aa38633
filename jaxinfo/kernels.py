"""Blocked Gaussian kernel sums in log space.

The one numerical primitive behind every estimator:

    L[b, i] = log sum_j w_j exp(-||y_i - x_j||^2 / (2 h_b^2))

computed block by block with a running log-sum-exp, so no (M, N) matrix is ever held: peak
memory is O(block^2 * n_bandwidths), set by ``block_size``, not by M or N.

Distances, accurate in float32:

* each (query block, reference block) pair is shifted by the mean of its query block, and
  squared distances come from one matrix multiply, ``|y'|^2 + |x'|^2 - 2 y'.x'``, computed once
  for all bandwidths. The shift keeps the norms at the spread of the query block, so data far
  from the origin (or several far-apart clusters) lose no digits;
* where that expansion could still be inaccurate for a pair that contributes to a sum (an error
  bound ``gamma * (|y'| + |x'|)^2 / (2 h^2)`` on the logit above ``LOGIT_TOLERANCE``: small
  bandwidths), the block is recomputed in the difference form ``sum_k (y_k - x_k)^2``, which
  does not cancel;
* rows that are equal bit for bit (a dataset against itself, or a copied subset) get distance
  exactly 0, whether or not they are the same array: equal rows are found by two 32-bit
  hashes of their bits.

The gradient is a custom VJP that recomputes each block in the backward pass (never storing the
forward's blocks), so the backward pass has the same memory bound as the forward. Gradients flow
to queries, references, log-weights and bandwidths. Forward-mode differentiation (``jax.jvp``,
``jax.jacfwd``) is not supported: use ``jax.grad``, ``jax.vjp`` or ``jax.jacrev``.

Host planning (validation, padding to a few size buckets, reusable prepared reference sets)
is kept apart from the jit-compiled numerics: sizes in one bucket share one compilation.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinfo._buckets import geometric_bucket
from jaxinfo._validation import check_bandwidth

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "LOGIT_TOLERANCE",
    "PreparedReference",
    "log_kernel_sums",
    "padded_length",
    "prepare_reference",
]

#: Rows and columns per block. 1024 x 1024 x float32 is 4 MiB per bandwidth.
DEFAULT_BLOCK_SIZE = 1024
_MIN_BLOCK = 8
#: Largest tolerated error estimate (nats) of a contributing logit computed by the expansion;
#: query blocks above it are recomputed in the difference form.
LOGIT_TOLERANCE = 1e-3
#: Logits this far (nats) below a row's block maximum do not count as contributing.
_CONTRIBUTION_WINDOW = 20.0


def padded_length(n: int, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[int, int]:
    """Returns ``(block, n_blocks)`` for n rows: a block and a bucketed block count.

    Below ``block_size`` rows one block of the next power of two (>= 8) is used. Above, up to
    15 blocks are used as they are; beyond, the count is rounded up to a multiple of 2^(a-3)
    for 2^a <= count < 2^(a+1) (8 buckets per doubling), so padding adds at most 1/8 of the
    rows and nearby sizes share one compilation.
    """
    if n <= block_size:
        return min(geometric_bucket(n, 1, minimum=_MIN_BLOCK), block_size), 1
    return block_size, geometric_bucket(-(-n // block_size), 8)


# --------------------------------------------------------------------------------------------
# Block numerics (traced)
# --------------------------------------------------------------------------------------------


def _squared_norms(a):
    """(n, d) -> (n,) row sums of squares, by pairwise halving: unlike ``jnp.sum``, whose
    vectorisation (and so round-off) XLA chooses by the number of rows, each row's result
    is the same however many rows there are."""
    squares = a * a
    while squares.shape[-1] > 1:
        half = squares.shape[-1] // 2
        paired = squares[:, :half] + squares[:, half : 2 * half]
        squares = jnp.concatenate([paired, squares[:, 2 * half :]], axis=1)
    return squares[:, 0]


_HASH_MULTIPLIERS = (0x9E3779B1, 0x85EBCA77)


def _row_hashes(a):
    """(n, d) -> (n, 2) uint32: two hashes of each row's bits (+0 and -0 hash alike), so
    that equal rows are recognised in O(n d) instead of comparing every pair."""
    a = jnp.where(a == 0, jnp.zeros((), a.dtype), a)
    if a.dtype.itemsize == 8:
        words = jax.lax.bitcast_convert_type(a, jnp.uint32).reshape(a.shape[0], -1)
    else:
        words = jax.lax.bitcast_convert_type(a.astype(jnp.float32), jnp.uint32)
    column = jnp.arange(1, words.shape[1] + 1, dtype=jnp.uint32)
    hashes = []
    for multiplier in _HASH_MULTIPLIERS:
        mixed = (words ^ (words >> 15)) * jnp.uint32(multiplier) + column * jnp.uint32(0x27D4EB2F)
        mixed = mixed ^ (mixed >> 13)
        hashes.append(jnp.sum(mixed * (column | jnp.uint32(1)), axis=1, dtype=jnp.uint32))
    return jnp.stack(hashes, axis=1)


def _expansion_gamma(dtype, width):
    """Estimated round-off of ``|y|^2 + |x|^2 - 2 y.x`` relative to ``(|y| + |x|)^2``.

    Measured on float32 Cu descriptors (d = 63, XLA:CPU): median 0.25 eps, 99.99th
    percentile 2.0 eps, largest 3.2 eps; the estimate is 4 eps, growing like sqrt(d) beyond.
    """
    return float(max(4.0, np.sqrt(width) / 2.0) * np.finfo(dtype).eps)


def _difference_d2(y, x):
    """Squared distances (By, Bx) in the difference form: one (By, Bx) pass per column (over
    the transposed blocks, whose columns are contiguous)."""
    y_t, x_t = y.T, x.T

    def add_column(k, total):
        diff = y_t[k][:, None] - x_t[k][None, :]
        return total + diff * diff

    return jax.lax.fori_loop(
        0, y.shape[1], add_column, jnp.zeros((y.shape[0], x.shape[0]), y.dtype)
    )


class _QueryBlock(NamedTuple):
    shifted: jax.Array  # (By, d) queries minus the block's centre
    sq: jax.Array  # (By,) squared norms of ``shifted``
    centre: jax.Array  # (d,)
    hashes: jax.Array  # (By, 2)


class _ReferenceBlock(NamedTuple):
    rows: jax.Array  # (Bx, d)
    log_w: jax.Array  # (Bx,)
    hashes: jax.Array  # (Bx, 2)


def _query_block(yb, hashes):
    centre = jnp.mean(yb, axis=0)
    shifted = yb - centre
    return _QueryBlock(shifted, _squared_norms(shifted), centre, hashes)


def _block_logits(q: _QueryBlock, r: _ReferenceBlock, scale, exact: bool):
    """(nb, By, Bx) logits ``-scale_b d2_ij + log w_j``, the (By, Bx) squared distances, the
    shifted reference rows (Bx, d) and, per query, the block's largest logit and the largest
    error estimate of the expansion among the logits near it (zero with ``exact``, the
    difference form)."""
    xs = r.rows - q.centre
    xs_sq = _squared_norms(xs)
    equal = (q.hashes[:, None, 0] == r.hashes[None, :, 0]) & (
        q.hashes[:, None, 1] == r.hashes[None, :, 1]
    )
    if exact:
        d2 = _difference_d2(q.shifted, xs)
    else:
        d2 = jnp.maximum(q.sq[:, None] + xs_sq[None, :] - 2.0 * (q.shifted @ xs.T), 0.0)
    d2 = jnp.where(equal, 0.0, d2)
    logits = -scale[:, None, None] * d2[None] + r.log_w[None, None, :]
    if exact:
        return logits, d2, xs, None
    # Error estimate of the expansion for the logits within the window of the row's peak in
    # this block, from per-row quantities only: such a pair has
    # d2 <= (max log w - peak + window) / scale, and |x'| <= |y'| + d, so the pair's reach
    # |y'| + |x'| is at most 2 |y'| + d.
    peak = jnp.max(logits, axis=(0, 2))
    low_scale = jnp.min(scale)
    spread = _finite_or_zero(jnp.max(r.log_w) - peak) + _CONTRIBUTION_WINDOW
    reach = 2.0 * jnp.sqrt(q.sq) + jnp.sqrt(jnp.maximum(spread, 0.0) / low_scale)
    gamma = _expansion_gamma(q.shifted.dtype, q.shifted.shape[1])
    return logits, d2, xs, (peak, (gamma * jnp.max(scale)) * reach * reach)


def _split_blocks(y, x, log_w, block_y, block_x):
    """Splits padded arrays into (query block inputs, reference blocks)."""
    queries = (y.reshape(-1, block_y, y.shape[-1]), _row_hashes(y).reshape(-1, block_y, 2))
    references = _ReferenceBlock(
        x.reshape(-1, block_x, x.shape[-1]),
        log_w.reshape(-1, block_x),
        _row_hashes(x).reshape(-1, block_x, 2),
    )
    return queries, references


def _finite_or_zero(a):
    return jnp.where(jnp.isfinite(a), a, jnp.zeros((), a.dtype))


def _forward_blocks(y, x, log_w, scale, block_y, block_x):
    """Blocked log-sum-exp; y (M, d), x (N, d) padded to the blocks. Returns (nb, M) sums and
    (n_query_blocks,) flags of the blocks that were recomputed in the difference form."""
    n_bw = scale.shape[0]
    queries, references = _split_blocks(y, x, log_w, block_y, block_x)

    def sums(q, exact):
        def step(carry, r):
            running, row_peak, row_error = carry
            logits, _, _, estimate = _block_logits(q, r, scale, exact)
            peak = _finite_or_zero(jnp.max(logits, axis=-1))
            block_lse = jnp.log(jnp.sum(jnp.exp(logits - peak[..., None]), axis=-1)) + peak
            if not exact:
                # Keep the largest error among blocks whose peak is within the window of the
                # row's largest logit so far: other blocks do not contribute to the sum.
                block_peak, block_error = estimate
                new_peak = jnp.maximum(row_peak, block_peak)
                floor = new_peak - _CONTRIBUTION_WINDOW
                row_error = jnp.maximum(
                    jnp.where(row_peak >= floor, row_error, 0.0),
                    jnp.where(block_peak >= floor, block_error, 0.0),
                )
                row_peak = new_peak
            return (jnp.logaddexp(running, block_lse), row_peak, row_error), None

        by = q.shifted.shape[0]
        start = (
            jnp.full((n_bw, by), -jnp.inf, dtype=y.dtype),
            jnp.full((by,), -jnp.inf, dtype=y.dtype),
            jnp.zeros((by,), y.dtype),
        )
        (total, _, row_error), _ = jax.lax.scan(step, start, references)
        return total, jnp.max(row_error) > LOGIT_TOLERANCE

    def one_query_block(args):
        # The condition sits outside the reference loop: a branch inside it would stop XLA
        # from fusing the block's arithmetic (~10x slower on CPU).
        q = _query_block(*args)
        total, inexact = sums(q, exact=False)
        total = jax.lax.cond(inexact, lambda: sums(q, exact=True)[0], lambda: total)
        return total, inexact

    out, inexact = jax.lax.map(one_query_block, queries)  # (n_yblocks, nb, By)
    return jnp.moveaxis(out, 1, 0).reshape(n_bw, -1), inexact


def _forward(y, x, log_w, scale, block_y, block_x):
    return _forward_blocks(y, x, log_w, scale, block_y, block_x)[0]


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


def _backward(y, x, log_w, scale, lse, inexact, cotangent, block_y, block_x, needed):
    """Cotangents for (y, x, log_w, scale), recomputing each block; None where not needed.

    ``d/dy_i = sum_j m_ij (x_j - y_i)`` and ``d/dx_j = sum_i m_ij (y_i - x_j)`` with
    ``m_ij = 2 sum_b scale_b g_bi exp(logit_bij - lse_bi)``, both in the block's shifted frame
    (so they do not cancel far from the origin); the sums ``m @ x'`` and ``y'.T @ m`` and the
    row and column sums of m come from products with [x' | 1] and [y' | 1]. Query blocks that
    the forward pass recomputed in the difference form (``inexact``) are recomputed so here.
    """
    d = y.shape[-1]
    queries, references = _split_blocks(y, x, log_w, block_y, block_x)
    # A sum that is -inf (every reference removed by its weight) gets no gradient, not NaN.
    lse = _finite_or_zero(lse)
    lse_blocks = jnp.moveaxis(lse.reshape(lse.shape[0], -1, block_y), 1, 0)
    cotangent_blocks = jnp.moveaxis(cotangent.reshape(cotangent.shape[0], -1, block_y), 1, 0)
    two_scale = 2.0 * scale
    zero = jnp.zeros((), y.dtype)

    def block_cotangents(q, lse_b, g_b, exact):
        # [y' | 1] transposed, (d + 1, By): XLA:CPU multiplies ``[y' | 1].T @ m`` about twice
        # as fast as ``m.T @ [y' | 1]``.
        shifted_ones_t = _with_ones(q.shifted).T

        def step(carry_y, r):
            logits, d2, xs, _ = _block_logits(q, r, scale, exact)
            # Weighted softmax of each query over the references, times the cotangent.
            weights = g_b[..., None] * jnp.exp(logits - lse_b[..., None])  # (nb, By, Bx)
            mixed = jnp.tensordot(two_scale, weights, axes=1)  # (By, Bx)
            sum_y = carry_y + mixed @ _with_ones(xs) if needed.y else carry_y
            if needed.x:
                sums = shifted_ones_t @ mixed  # (d + 1, Bx)
                grad_x = sums[:d] - sums[d:] * xs.T
            per_reference = (
                grad_x if needed.x else zero,  # (d, Bx)
                jnp.sum(weights, axis=(0, 1)) if needed.log_w else zero,
                -jnp.sum(weights * d2[None], axis=(1, 2)) if needed.scale else zero,
            )
            return sum_y, per_reference

        start = jnp.zeros((q.shifted.shape[0], d + 1) if needed.y else (), y.dtype)
        return jax.lax.scan(step, start, references)

    def one_query_block(carry, args):
        yb, hashes, lse_b, g_b, exact_b = args
        q = _query_block(yb, hashes)
        sum_y, (grad_x, grad_w, grad_scale) = jax.lax.cond(
            exact_b,
            lambda: block_cotangents(q, lse_b, g_b, exact=True),
            lambda: block_cotangents(q, lse_b, g_b, exact=False),
        )
        grad_yb = sum_y[:, :d] - sum_y[:, d:] * q.shifted if needed.y else zero
        carry = (
            carry[0] + jnp.moveaxis(grad_x, 0, 1).reshape(d, -1) if needed.x else carry[0],
            carry[1] + grad_w.reshape(carry[1].shape) if needed.log_w else carry[1],
            carry[2] + jnp.sum(grad_scale, axis=0) if needed.scale else carry[2],
        )
        return carry, grad_yb

    start = (
        jnp.zeros((d, x.shape[0]) if needed.x else (), x.dtype),
        jnp.zeros_like(log_w) if needed.log_w else zero,
        jnp.zeros_like(scale) if needed.scale else zero,
    )
    blocks = (*queries, lse_blocks, cotangent_blocks, inexact)
    (grad_x, grad_w, grad_scale), grad_y = jax.lax.scan(one_query_block, start, blocks)
    return (
        grad_y.reshape(y.shape) if needed.y else None,
        grad_x.T if needed.x else None,
        grad_w if needed.log_w else None,
        grad_scale if needed.scale else None,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _log_kernel_sums_padded(y, x, log_w, scale, block_y, block_x):
    return _forward(y, x, log_w, scale, block_y, block_x)


def _fwd(y, x, log_w, scale, block_y, block_x):
    # symbolic_zeros: each argument comes with whether it is perturbed, so the backward pass
    # skips the cotangents nobody asked for (of log-weights and bandwidths, usually).
    needed = _Needed(y.perturbed, x.perturbed, log_w.perturbed, scale.perturbed)
    y, x, log_w, scale = (a.value for a in (y, x, log_w, scale))
    lse, inexact = _forward_blocks(y, x, log_w, scale, block_y, block_x)
    return lse, (y, x, log_w, scale, lse, inexact, needed)


def _bwd(block_y, block_x, residuals, cotangent):
    *arrays, needed = residuals
    return _backward(*arrays, cotangent, block_y, block_x, needed)


_log_kernel_sums_padded.defvjp(_fwd, _bwd, symbolic_zeros=True)

_log_kernel_sums_jit = jax.jit(_log_kernel_sums_padded, static_argnums=(4, 5))


# --------------------------------------------------------------------------------------------
# Host planning: validation, padding, prepared references
# --------------------------------------------------------------------------------------------


def _is_traced(*arrays):
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _pad_rows(a, n):
    """Pads rows to n by repeating the last row (keeps block centres and error bounds tight)."""
    widths = [(0, n - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    if isinstance(a, np.ndarray):
        return np.pad(a, widths, mode="edge")
    return jnp.pad(a, widths, mode="edge")


def _pad_log_weights(log_w, n):
    widths = (0, n - log_w.shape[0])
    if isinstance(log_w, np.ndarray):
        return np.pad(log_w, widths, constant_values=-np.inf)
    return jnp.pad(log_w, widths, constant_values=-jnp.inf)


def _floating_dtype(*dtypes):
    """The result dtype: the inputs' common floating dtype, within what JAX allows now."""
    dtype = np.result_type(*[np.dtype(d) for d in dtypes])
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"descriptors must be floating-point arrays, got dtype {dtype.name}")
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _as_descriptor_array(a, name):
    """Host (numpy) or traced array of shape (n, d), finite and floating."""
    if isinstance(a, str | bytes) or a is None:
        raise ValueError(
            f"{name} must be an array of descriptors (n, d), got {type(a).__name__}; "
            "compute descriptors first with jaxinfo.descriptors(structures)"
        )
    if not _is_traced(a):
        try:
            a = np.asarray(a)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} is not an array of descriptors: {error}") from None
        if a.dtype == object or not (
            np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
        ):
            raise ValueError(f"{name} must be a numeric array of descriptors, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of descriptors (n, d), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no descriptor rows")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has zero columns")
    if not _is_traced(a):
        finite = np.isfinite(a).all(axis=1)
        if not finite.all():
            raise ValueError(f"{name} contains NaN or inf (row {int(np.argmin(finite))})")
    return a


def _check_block_size(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer):
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return int(block_size)


def _scales(h, dtype):
    """``1 / (2 h^2)`` as a 1-D array of ``dtype``; concrete h is validated for that dtype."""
    if _is_traced(h):
        return 1.0 / (2.0 * jnp.atleast_1d(jnp.asarray(h, dtype)) ** 2)
    h = check_bandwidth(h)
    with np.errstate(over="ignore", divide="ignore"):
        scale = 1.0 / (2.0 * np.atleast_1d(np.asarray(h, np.float64)) ** 2)
    finfo = np.finfo(dtype)
    if np.any(~np.isfinite(scale) | (scale >= finfo.max)):
        smallest = float(np.sqrt(0.5 / finfo.max))
        raise ValueError(
            f"bandwidth h = {float(np.min(h)):g} is too small for {np.dtype(dtype).name}: "
            f"1/(2 h^2) overflows (h must be > {smallest:.3g}; use float64 or a larger h)"
        )
    return scale.astype(dtype)


@dataclasses.dataclass(frozen=True)
class PreparedReference:
    """A reference descriptor set made ready for repeated kernel sums against it.

    Holds the rows padded to a block bucket (on the device), their log-weights (``-inf`` on
    padded rows) and the block layout, so that :func:`log_kernel_sums` and the estimators skip
    validation, padding and the transfer of the reference set on every call. Build it with
    :func:`prepare_reference`; pass it wherever a reference set ``x`` is expected.

    Attributes:
        rows: (n_blocks * block, d) padded reference descriptors.
        log_weights: (n_blocks * block,) log-weights; ``-inf`` for padding.
        n_rows: number of real (unpadded) reference rows N.
        block: rows per reference block.
    """

    rows: jax.Array
    log_weights: jax.Array
    n_rows: int
    block: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, d)`` of the real reference set."""
        return (self.n_rows, self.rows.shape[1])

    @property
    def dtype(self):
        """Floating dtype of the rows."""
        return self.rows.dtype


def _check_log_weights(log_weights, n, dtype):
    if _is_traced(log_weights):
        log_weights = jnp.asarray(log_weights, dtype)
    else:
        log_weights = np.asarray(log_weights, dtype=np.float64)
        if np.isnan(log_weights).any() or np.isposinf(log_weights).any():
            raise ValueError("log_weights must not contain NaN or +inf (use -inf to drop a row)")
        log_weights = log_weights.astype(dtype)
    if log_weights.shape != (n,):
        raise ValueError(f"log_weights must have shape ({n},), got {tuple(log_weights.shape)}")
    return log_weights


def prepare_reference(
    x, *, log_weights=None, block_size: int = DEFAULT_BLOCK_SIZE, dtype=None
) -> PreparedReference:
    """Validates, pads and places a reference set once, for many kernel sums against it.

    Args:
        x: (N, d) reference descriptors (1/Angstrom).
        log_weights: optional (N,) log-weights (default 0); ``-inf`` removes a row.
        block_size: rows per block (as in :func:`log_kernel_sums`).
        dtype: floating dtype of the prepared set (default: that of ``x``).

    Returns:
        A :class:`PreparedReference`.

    Example:
        >>> import numpy as np, jaxinfo
        >>> x = np.random.default_rng(0).normal(scale=0.01, size=(1000, 8))
        >>> ref = jaxinfo.prepare_reference(x)
        >>> dh = jaxinfo.delta_entropy(x[:3], ref)   # no padding or transfer of x here
        >>> dh.shape
        (3,)
    """
    block_size = _check_block_size(block_size)
    x = _as_descriptor_array(x, "reference set x")
    if _is_traced(x):
        raise ValueError("prepare_reference needs a concrete array (not one traced under jit)")
    dtype = _floating_dtype(x.dtype if dtype is None else dtype)
    n = x.shape[0]
    log_weights = np.zeros(n, dtype) if log_weights is None else log_weights
    log_weights = _check_log_weights(log_weights, n, dtype)
    block, n_blocks = padded_length(n, block_size)
    rows = _pad_rows(np.asarray(x, dtype=dtype), block * n_blocks)
    padded_w = _pad_log_weights(log_weights, block * n_blocks)
    return PreparedReference(jnp.asarray(rows), jnp.asarray(padded_w), n, block)


@functools.cache
def _per_device_kernel(block_y: int, block_x: int):
    """The per-device body for :func:`jaxinfo.sharding.sharded_map_queries` (one per block
    layout, so the sharded computation is compiled once per bucket, not on every call)."""

    def local(y_shard, x_all, w_all, scale):
        return _log_kernel_sums_padded(y_shard, x_all, w_all, scale, block_y, block_x)

    return local


def log_kernel_sums(y, x, h, *, log_weights=None, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Log of Gaussian kernel sums of each query over a reference set.

    ``L[i] = log sum_j w_j exp(-||y_i - x_j||^2 / (2 h^2))``, blocked, in log space.

    Concrete inputs are validated, padded to a size bucket and summed by one compiled program
    per bucket; the result is a numpy array. Traced inputs (under ``jax.jit``, ``jax.grad``,
    ``jax.vmap``) give a traced result and are differentiable (reverse mode) with respect to
    ``y``, ``x``, ``log_weights`` and ``h``.

    Args:
        y: (M, d) query descriptors.
        x: (N, d) reference descriptors, or a :class:`PreparedReference`.
        h: bandwidth (1/Angstrom), a scalar or a 1-D array of n_h bandwidths, each > 0 and
            large enough that ``1/(2 h^2)`` is finite in the working dtype.
        log_weights: optional (N,) log-weights of the references (default 0: unit weights);
            ``-inf`` removes a reference; NaN and ``+inf`` are rejected. Not allowed with a
            prepared reference (give them to :func:`prepare_reference`).
        block_size: rows and columns per block; peak memory ~ n_h * block_size^2 floats.
        mesh: optional ``jax.sharding.Mesh`` with an axis ``"data"`` (see
            :func:`jaxinfo.sharding.data_mesh`): queries are split over its devices. Values
            equal one device's up to the round-off of the block shifts (float32 ~1e-7).

    Returns:
        (M,) for scalar h, (M, n_h) for 1-D h, in the floating dtype of the inputs.

    Raises:
        ValueError: for arrays that are not (n, d), empty, non-numeric, non-finite, of
            different widths; bad bandwidths, weights or block sizes.
    """
    block_size = _check_block_size(block_size)
    y = _as_descriptor_array(y, "queries y")
    prepared = x if isinstance(x, PreparedReference) else None
    if prepared is None:
        x = _as_descriptor_array(x, "reference set x")
        dtype = _floating_dtype(y.dtype, x.dtype)
    else:
        if log_weights is not None:
            raise ValueError("log_weights belong to prepare_reference for a prepared reference")
        dtype = _floating_dtype(y.dtype, prepared.dtype)
    width = x.shape[1]
    if y.shape[1] != width:
        raise ValueError(
            f"descriptor widths differ: {y.shape[1]} columns against {width} "
            "(computed with different k or a species-resolved layout?)"
        )
    scalar_h = np.ndim(h) == 0
    scale = _scales(h, dtype)
    m = y.shape[0]
    traced = _is_traced(y, x, log_weights, scale) or (
        prepared is not None and _is_traced(prepared.rows)
    )

    if prepared is None:
        n = x.shape[0]
        block_x, n_x = padded_length(n, block_size)
        log_w = np.zeros(n, dtype) if log_weights is None else log_weights
        log_w = _check_log_weights(log_w, n, dtype)
        x_rows = _pad_rows(x.astype(dtype) if traced else np.asarray(x, dtype), block_x * n_x)
        x_log_w = _pad_log_weights(log_w, block_x * n_x)
    else:
        block_x, x_rows, x_log_w = prepared.block, prepared.rows, prepared.log_weights
        if x_rows.dtype != dtype:
            x_rows, x_log_w = x_rows.astype(dtype), x_log_w.astype(dtype)

    n_devices = 1 if mesh is None else _mesh_size(mesh)
    per_device = -(-m // n_devices)
    block_y, n_y = padded_length(per_device, block_size)
    m_padded = block_y * n_y * n_devices
    y_rows = _pad_rows(y.astype(dtype) if traced else np.asarray(y, dtype), m_padded)
    if mesh is None:
        if traced:
            lse = _log_kernel_sums_padded(y_rows, x_rows, x_log_w, scale, block_y, block_x)
        else:
            lse = _log_kernel_sums_jit(y_rows, x_rows, x_log_w, scale, block_y, block_x)
    else:
        from jaxinfo.sharding import sharded_map_queries

        local = _per_device_kernel(block_y, block_x)
        lse = sharded_map_queries(local, mesh, y_rows, x_rows, x_log_w, scale)
    if traced:
        lse = lse[:, :m]
        return lse[0] if scalar_h else lse.T
    if not lse.is_fully_addressable:  # a mesh spanning several processes (jax.distributed)
        from jax.experimental import multihost_utils

        lse = multihost_utils.process_allgather(lse, tiled=True)
    lse = np.asarray(lse)[:, :m]
    return lse[0] if scalar_h else np.ascontiguousarray(lse.T)


def _mesh_size(mesh) -> int:
    from jaxinfo.sharding import DATA_AXIS

    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh must have an axis named {DATA_AXIS!r}, got {mesh.axis_names}")
    return int(mesh.shape[DATA_AXIS])
