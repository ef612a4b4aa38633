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
differentiable with respect to the descriptors (and through them to positions and cell).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from jaxinfo.kernels import DEFAULT_BLOCK_SIZE, log_kernel_sums

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


def _self_log_sums(x, h, block_size, mesh):
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
    n = log_p.shape[0]
    log_n = float(jnp.log(n))
    return DatasetMetrics(
        entropy=log_n - jnp.mean(log_p, axis=0),
        diversity=logsumexp(-log_p, axis=0),
        delta_entropy=-log_p,
        log_n=log_n,
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
        Scalar array, or (n_h,) for 1-D h; dtype of ``x``.

    Example:
        >>> import numpy as np, jaxinfo
        >>> x = np.zeros((10, 3))  # ten identical environments carry no information
        >>> bool(abs(jaxinfo.entropy(x, h=0.015)) < 1e-6)
        True
    """
    log_p = _self_log_sums(x, h, block_size, mesh)
    return jnp.log(log_p.shape[0]).astype(log_p.dtype) - jnp.mean(log_p, axis=0)


def diversity(x, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Diversity D(X) = log sum_i 1 / p_i, in nats (H <= D <= log N).

    Args:
        x: (N, d) descriptors.
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        block_size: rows/columns per kernel block.
        mesh: optional device mesh with a ``"data"`` axis to split the work over devices.

    Returns:
        Scalar array, or (n_h,) for 1-D h.
    """
    return logsumexp(-_self_log_sums(x, h, block_size, mesh), axis=0)


def delta_entropy(y, x, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE, mesh=None):
    """Differential entropy dH(y | X) = -log sum_j K(y, x_j) of each test environment.

    Positive values mark environments that X does not cover (novel); environments of X itself
    have dH <= 0. Computed as a log-sum-exp, dH stays finite for far outliers (the peer package
    returns +inf there).

    Args:
        y: (M, d) test descriptors.
        x: (N, d) reference descriptors.
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

    Returns:
        (M,) for scalar h, (M, n_h) for 1-D h.
    """
    log_sums = log_kernel_sums(y, x, h, block_size=block_size, mesh=mesh)
    return log_sums - jnp.log(jnp.shape(x)[0]).astype(log_sums.dtype)


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
        x: (N, d) reference descriptors.
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        eps: threshold on dH in nats (the peer's default is 1e-5).
        block_size: rows/columns per kernel block.
        mesh: optional device mesh with a ``"data"`` axis to split the work over devices.

    Returns:
        Scalar, or (n_h,) for 1-D h. Equals 1 when Y is a subset of X.
    """
    dh = delta_entropy(y, x, h, block_size=block_size, mesh=mesh)
    return jnp.mean((dh < eps).astype(dh.dtype), axis=0)
