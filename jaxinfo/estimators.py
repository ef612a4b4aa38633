"""Information-theoretic estimators on descriptor sets (entropies in nats, h in 1/Angstrom).

With the unnormalised Gaussian kernel ``K(a, b) = exp(-||a - b||^2 / (2 h^2))`` and
``p_i = sum_j K(x_i, x_j)`` (self term included):

* entropy ``H(X) = log N - mean_i log p_i``, with ``0 <= H <= log N``;
* diversity ``D(X) = log sum_i 1 / p_i``, with ``H <= D <= log N``;
* differential entropy ``dH(y | X) = -log sum_j K(y, x_j)`` (no 1/N): > 0 means y is novel,
  and ``dH(x_i | X) <= 0``;
* overlap of Y given X: the fraction of y with ``dH(y | X) < eps``.

Identities: ``H = log N + mean_i dH(x_i | X)`` and ``D = log sum_i exp dH(x_i | X)``.

Every kernel sum is a blocked log-sum-exp (:mod:`jaxinfo.kernels`): memory is bounded by the
block size and dH stays finite for far outliers, where the peer package ``quests`` returns
``+inf`` once every kernel term underflows. A 1-D array of bandwidths gives one result per
bandwidth (trailing axis of per-environment outputs) from one distance pass. All functions are
differentiable (reverse mode) with respect to the descriptors (and through them to positions
and cell).

Concrete inputs give numpy results (scalars as 0-d numpy arrays), computed by one compiled
program per size bucket; inputs traced under ``jax.jit``/``jax.grad`` give traced results. A
reference set used many times can be prepared once with :func:`jaxinfo.prepare_reference`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jaxinfo.kernels import DEFAULT_BLOCK_SIZE, PreparedReference, log_kernel_sums

__all__ = [
    "DEFAULT_BANDWIDTH",
    "DatasetMetrics",
    "dataset_metrics",
    "delta_entropy",
    "diversity",
    "entropy",
    "log_density",
    "overlap",
]

DEFAULT_BANDWIDTH = 0.015
DEFAULT_OVERLAP_EPS = 1e-5


class DatasetMetrics(NamedTuple):
    """Results of :func:`dataset_metrics`; scalars, or arrays over bandwidths for 1-D h.

    Attributes:
        entropy: H(X) in nats, () or (n_h,).
        diversity: D(X) in nats, () or (n_h,).
        delta_entropy: dH(x_i | X) of every environment, (N,) or (N, n_h).
        log_n: log N.
    """

    entropy: jax.Array
    diversity: jax.Array
    delta_entropy: jax.Array
    log_n: float


def _reductions(log_p):
    """(log N, entropy, diversity) from self log-sums, on the host for concrete input."""
    n = log_p.shape[0]
    if isinstance(log_p, np.ndarray):
        dtype = log_p.dtype.type
        log_n = np.log(n)
        wide = log_p.astype(np.float64)
        peak = np.max(-wide, axis=0)
        diversity = np.log(np.sum(np.exp(-wide - peak), axis=0)) + peak
        return log_n, dtype(log_n - np.mean(wide, axis=0)), dtype(diversity)
    log_n = jnp.log(n).astype(log_p.dtype)
    return log_n, log_n - jnp.mean(log_p, axis=0), logsumexp(-log_p, axis=0)


def _as_result(value, dtype_source):
    """0-d numpy arrays for concrete results (like the per-environment ones)."""
    if isinstance(value, jax.Array):
        return value
    return np.asarray(value, dtype=dtype_source.dtype)


def _self_log_sums(x, h, block_size, mesh):
    if isinstance(x, PreparedReference):
        raise ValueError("entropy and diversity take a descriptor array, not a prepared reference")
    return log_kernel_sums(x, x, h, block_size=block_size, mesh=mesh)


def dataset_metrics(x, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Entropy, diversity and per-environment dH(x_i | X) from a single kernel pass.

    Args:
        x: (N, d) descriptors.
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        block_size: rows/columns per kernel block (bounds memory).
        mesh: optional device mesh with a ``"data"`` axis to split the work over devices.

    Returns:
        :class:`DatasetMetrics`.

    Example:
        >>> import numpy as np, jaxinfo
        >>> x = np.random.default_rng(0).normal(scale=0.002, size=(100, 63))
        >>> m = jaxinfo.dataset_metrics(x, h=0.015)
        >>> print(f"H={float(m.entropy):.2f} D={float(m.diversity):.2f} log N={m.log_n:.2f}")
        H=1.08 D=1.08 log N=4.61
    """
    log_p = _self_log_sums(x, h, block_size, mesh)
    _, entropy_value, diversity_value = _reductions(log_p)
    return DatasetMetrics(
        entropy=_as_result(entropy_value, log_p),
        diversity=_as_result(diversity_value, log_p),
        delta_entropy=-log_p,
        log_n=float(np.log(log_p.shape[0])),
    )


def entropy(x, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Information entropy H(X) = log N - mean_i log sum_j K(x_i, x_j), in nats.

    Args:
        x: (N, d) descriptors (1/Angstrom).
        h: bandwidth in 1/Angstrom, scalar or 1-D array of n_h bandwidths.
        block_size: rows/columns per kernel block (bounds memory, not results).
        mesh: optional device mesh with a ``"data"`` axis (:func:`jaxinfo.sharding.data_mesh`)
            to split the work over devices; results equal one device's to round-off.

    Returns:
        Scalar, or (n_h,) for 1-D h; dtype of ``x``. ``0 <= H <= log N``.

    Example:
        >>> import numpy as np, jaxinfo
        >>> x = np.zeros((10, 3))  # ten identical environments carry no information
        >>> abs(float(jaxinfo.entropy(x, h=0.015))) < 1e-6  # 0 up to round-off
        True
    """
    log_p = _self_log_sums(x, h, block_size, mesh)
    return _as_result(_reductions(log_p)[1], log_p)


def diversity(x, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Diversity D(X) = log sum_i 1 / p_i, in nats (H <= D <= log N).

    Args:
        x: (N, d) descriptors.
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        block_size: rows/columns per kernel block.
        mesh: optional device mesh with a ``"data"`` axis to split the work over devices.

    Returns:
        Scalar, or (n_h,) for 1-D h.
    """
    log_p = _self_log_sums(x, h, block_size, mesh)
    return _as_result(_reductions(log_p)[2], log_p)


def delta_entropy(y, x, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Differential entropy dH(y | X) = -log sum_j K(y, x_j) of each test environment.

    Positive values mark environments that X does not cover (novel); environments of X itself
    have dH <= 0. Computed as a log-sum-exp, dH stays finite for far outliers (the peer package
    returns +inf there).

    Args:
        y: (M, d) test descriptors.
        x: (N, d) reference descriptors, or a :class:`jaxinfo.PreparedReference` from
            :func:`jaxinfo.prepare_reference` (faster for repeated calls).
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        block_size: rows/columns per kernel block.
        mesh: optional device mesh with a ``"data"`` axis to split the work over devices.

    Returns:
        (M,) for scalar h, (M, n_h) for 1-D h.
    """
    return -log_kernel_sums(y, x, h, block_size=block_size, mesh=mesh)


def log_density(y, x, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Log of the kernel density of X at each test environment: log (1/N) sum_j K(y, x_j).

    ``H(X) = -mean_i log_density(x_i, X)``; low values flag rare environments.

    Args:
        y: (M, d) test descriptors.
        x: (N, d) reference descriptors, or a :class:`jaxinfo.PreparedReference`.
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        block_size: rows/columns per kernel block.
        mesh: optional device mesh with a ``"data"`` axis to split the work over devices.

    Returns:
        (M,) for scalar h, (M, n_h) for 1-D h.
    """
    log_sums = log_kernel_sums(y, x, h, block_size=block_size, mesh=mesh)
    n = x.n_rows if isinstance(x, PreparedReference) else np.shape(x)[0]
    return log_sums - np.log(n).astype(log_sums.dtype)


def overlap(
    y,
    x,
    h=DEFAULT_BANDWIDTH,
    eps: float = DEFAULT_OVERLAP_EPS,
    *,
    block_size=DEFAULT_BLOCK_SIZE,
    mesh=None,
):
    """Fraction of test environments covered by X: mean of [dH(y | X) < eps], in [0, 1].

    Args:
        y: (M, d) test descriptors.
        x: (N, d) reference descriptors, or a :class:`jaxinfo.PreparedReference`.
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        eps: finite threshold on dH in nats (the peer's default is 1e-5).
        block_size: rows/columns per kernel block.
        mesh: optional device mesh with a ``"data"`` axis to split the work over devices.

    Returns:
        Scalar, or (n_h,) for 1-D h. Equals 1 when Y is a subset of X (equal rows have
        distance exactly 0, in float32 too).
    """
    if isinstance(eps, jax.core.Tracer):
        raise ValueError("eps must be a concrete number, not a traced value")
    try:
        eps_value = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a finite number (nats), got {eps!r}") from None
    if not np.isfinite(eps_value):
        raise ValueError(f"eps must be a finite number (nats), got {eps!r}")
    dh = delta_entropy(y, x, h, block_size=block_size, mesh=mesh)
    if isinstance(dh, np.ndarray):
        return np.mean(dh < eps_value, axis=0).astype(dh.dtype)
    return jnp.mean((dh < eps_value).astype(dh.dtype), axis=0)
