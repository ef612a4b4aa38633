"""Entropy and diversity of very large sets from sampled queries, with standard errors.

Both estimators are averages over environments of an exact per-environment quantity:

    H = log N - (1/N) sum_i l_i,        D = log S,  S = sum_i 1/p_i = sum_i exp(-l_i),

with ``l_i = log p_i = log sum_j K(x_i, x_j)``. Drawing n query rows uniformly *without
replacement* and summing each one exactly against all N rows (one O(n N) pass instead of
O(N^2)) gives unbiased estimates with the textbook survey-sampling variance:

* ``H_hat = log N - mean(l_sample)``, unbiased for H, with
  ``Var(H_hat) = (1 - n/N) s_l^2 / n`` (s_l^2: sample variance of l, ddof 1);
* ``S_hat = N mean(u_sample)`` with ``u = 1/p``, unbiased for S, with
  ``Var(S_hat) = N^2 (1 - n/N) s_u^2 / n``; ``D_hat = log S_hat`` with the delta-method
  standard error ``se(S_hat) / S_hat``. The logarithm makes ``D_hat`` slightly biased low
  (by about ``se^2 / 2``, Jensen), negligible once the standard error is small.

The factor ``(1 - n/N)`` is the finite-population correction: with every row used (n = N)
the estimate is the exact value and its standard error is 0.

Sampling is reproducible from ``seed``. With ``target_stderr`` the queries are drawn in
batches, each batch sized from the variance seen so far, until the standard error reaches
the target (or every row is used, or ``max_queries`` is reached).

The references may be an in-memory array (prepared once with
:func:`jaxinfo.prepare_reference`) or files read block by block (:mod:`jaxinfo.streaming`).
With several processes started by ``jax.distributed.initialize``, ``distributed=True``
splits the queries over the processes and gathers their log-sums with a CPU/GPU collective,
so every process returns the same estimate.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.kernels import DEFAULT_BLOCK_SIZE, log_kernel_sums, prepare_reference
from jaxinfo.streaming import (
    DEFAULT_BLOCK_ROWS,
    DescriptorSource,
    open_source,
    streamed_log_kernel_sums,
)

__all__ = [
    "DEFAULT_N_QUERIES",
    "SampledEstimate",
    "estimate_diversity",
    "estimate_entropy",
]

#: Queries drawn by default (and the first batch with a target standard error).
DEFAULT_N_QUERIES = 2048


class SampledEstimate(NamedTuple):
    """A sampled estimate and its standard error (nats).

    Attributes:
        value: the estimate (H or D), a numpy scalar, or (n_h,) for 1-D h.
        stderr: its standard error, same shape; 0 when every row was used (exact).
        n_queries: number of query rows used n.
        n_total: number of rows N of the set.
    """

    value: np.ndarray
    stderr: np.ndarray
    n_queries: int
    n_total: int

    @property
    def exact(self) -> bool:
        """Whether every row was used (the value is then the exact one)."""
        return self.n_queries == self.n_total

    def __str__(self) -> str:
        values, errors = np.atleast_1d(self.value), np.atleast_1d(self.stderr)
        text = ", ".join(f"{v:.4f} ± {e:.4f}" for v, e in zip(values, errors, strict=True))
        return f"{text} nats ({self.n_queries} of {self.n_total} queries)"


# --------------------------------------------------------------------------------------------
# Validation


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_target(target):
    if target is None:
        return None
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise ValueError(f"target_stderr must be a number > 0 (nats), got {target!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"target_stderr must be a finite number > 0 (nats), got {target!r}")
    return value


def _rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ValueError(f"seed must be an integer, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# Sampling without replacement, in batches


class _Sampler:
    """Uniform draws without replacement from range(n), batch after batch.

    While few rows are used, candidates are drawn with replacement and repeats are rejected
    (memory O(drawn)); once a quarter of the rows are used, the unused ones are shuffled.
    """

    def __init__(self, n: int, rng: np.random.Generator):
        self.n, self.rng = n, rng
        self.used = np.empty(0, np.int64)  # sorted
        self.rest = None  # shuffled unused rows, once built

    def draw(self, k: int) -> np.ndarray:
        k = min(k, self.n - self.used.size)
        if self.rest is None and (self.used.size + k) * 4 > self.n:
            unused = np.setdiff1d(np.arange(self.n, dtype=np.int64), self.used)
            self.rest = self.rng.permutation(unused)
        if self.rest is not None:
            out, self.rest = self.rest[:k], self.rest[k:]
        else:
            out = np.empty(0, np.int64)
            while out.size < k:
                candidates = self.rng.integers(0, self.n, 2 * (k - out.size) + 16)
                _, first = np.unique(candidates, return_index=True)
                candidates = candidates[np.sort(first)]  # distinct, in draw order
                fresh = candidates[~np.isin(candidates, self.used)]
                fresh = fresh[~np.isin(fresh, out)]
                out = np.concatenate([out, fresh[: k - out.size]])
        self.used = np.union1d(self.used, out)
        return out


# --------------------------------------------------------------------------------------------
# Estimates from sampled log-sums


def _entropy_estimate(log_p: np.ndarray, n_total: int):
    """(H_hat, stderr) from the sampled l_i (float64, (n,) or (n, n_h))."""
    n = log_p.shape[0]
    value = math.log(n_total) - np.mean(log_p, axis=0)
    if n == n_total:
        return value, np.zeros_like(value)
    if n < 2:
        return value, np.full_like(value, np.inf)
    variance = np.var(log_p, axis=0, ddof=1) * (1.0 - n / n_total) / n
    return value, np.sqrt(variance)


def _diversity_estimate(log_p: np.ndarray, n_total: int):
    """(D_hat, delta-method stderr) from the sampled l_i: u_i = exp(-l_i), shifted for range."""
    n = log_p.shape[0]
    shift = np.max(-log_p, axis=0)
    u = np.exp(-log_p - shift)  # in (0, 1]
    mean_u = np.mean(u, axis=0)
    value = math.log(n_total) + np.log(mean_u) + shift
    if n == n_total:
        return value, np.zeros_like(value)
    if n < 2:
        return value, np.full_like(value, np.inf)
    relative = np.sqrt(np.var(u, axis=0, ddof=1) * (1.0 - n / n_total) / n) / mean_u
    return value, relative


def _variance_per_query(log_p, kind):
    """s^2 (per-query variance in the estimate's units, float64, max over bandwidths)."""
    if kind == "entropy":
        return float(np.max(np.var(log_p, axis=0, ddof=1)))
    u = np.exp(-log_p - np.max(-log_p, axis=0))
    return float(np.max(np.var(u, axis=0, ddof=1) / np.mean(u, axis=0) ** 2))


def _next_batch(log_p, kind, n_total, target, first):
    """Queries still needed for the target: n with (1 - n/N) s^2 / n <= target^2, plus 5 %."""
    n = log_p.shape[0]
    s2 = _variance_per_query(log_p, kind)
    needed = s2 / (target * target + s2 / n_total) * 1.05
    return max(math.ceil(needed) - n, min(first, 64), 1)


def _gather(local: np.ndarray, n_rows: int) -> np.ndarray:
    """Concatenates every process's rows (in process order) on every process."""
    from jax.experimental import multihost_utils

    width = local.shape[1:]
    counts = multihost_utils.process_allgather(np.asarray([local.shape[0]]))
    longest = int(np.max(counts))
    padded = np.zeros((longest, *width), local.dtype)
    padded[: local.shape[0]] = local
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    pieces = [gathered[p, : int(counts[p, 0])] for p in range(gathered.shape[0])]
    out = np.concatenate(pieces)
    assert out.shape[0] == n_rows
    return out


def _estimate(kind, sums_of, n_total, *, n_queries, seed, target_stderr, max_queries, progress):
    n_queries = _check_count(n_queries, "n_queries")
    target = _check_target(target_stderr)
    max_queries = n_total if max_queries is None else _check_count(max_queries, "max_queries")
    max_queries = min(max_queries, n_total)
    sampler = _Sampler(n_total, _rng(seed))
    estimate = _entropy_estimate if kind == "entropy" else _diversity_estimate
    batch = min(n_queries, max_queries)
    pieces = []
    from tqdm import tqdm

    with tqdm(total=None, disable=not progress, desc=f"sampled {kind}", unit="query") as bar:
        while True:
            indices = sampler.draw(batch)
            sums = sums_of(indices)
            pieces.append(np.asarray(sums, np.float64))
            dtype = np.asarray(sums).dtype
            bar.update(indices.size)
            log_p = np.concatenate(pieces)
            value, stderr = estimate(log_p, n_total)
            n = log_p.shape[0]
            if target is None or n >= max_queries or float(np.max(stderr)) <= target:
                break
            batch = min(_next_batch(log_p, kind, n_total, target, n_queries), max_queries - n)
            bar.set_postfix(stderr=f"{float(np.max(stderr)):.4f}")
    cast = (lambda a: dtype.type(a)) if np.ndim(value) == 0 else (lambda a: a.astype(dtype))
    return SampledEstimate(cast(value), cast(stderr), int(n), int(n_total))


def _is_source(x) -> bool:
    if isinstance(x, DescriptorSource | str | os.PathLike):
        return True
    return isinstance(x, list) and any(isinstance(i, str | os.PathLike | tuple) for i in x)


def _sums_function(x, h, *, block_size, block_rows, mesh, distributed, progress):
    """``(indices) -> l[indices]`` (exact log-sums of those rows against all rows) and N."""
    if _is_source(x):
        source = x if isinstance(x, DescriptorSource) else open_source(x)

        def local_sums(indices):
            queries = source.take(indices, block_rows)
            return streamed_log_kernel_sums(
                queries, source, h, block_rows=block_rows, block_size=block_size, progress=progress
            )

        n_total = source.n_rows
    else:
        reference = prepare_reference(x, block_size=block_size)
        x = np.asarray(x)
        n_total = reference.n_rows

        def local_sums(indices):
            return log_kernel_sums(x[indices], reference, h, block_size=block_size, mesh=mesh)

    if not distributed:
        return local_sums, n_total
    import jax

    n_processes, rank = jax.process_count(), jax.process_index()

    def shared_sums(indices):
        # Every process draws the same indices (same seed); each sums its contiguous share,
        # then all shares are gathered everywhere in process order.
        bounds = np.linspace(0, indices.size, n_processes + 1).astype(int)
        mine = indices[bounds[rank] : bounds[rank + 1]]
        if mine.size:
            local = np.asarray(local_sums(mine))
        else:
            shape = (0,) if np.ndim(h) == 0 else (0, np.size(h))
            local = np.zeros(shape, np.asarray(local_sums(indices[:1])).dtype)
        return _gather(local, indices.size) if n_processes > 1 else local

    return shared_sums, n_total


_ARGS_DOC = """
    Args:
        x: (N, d) descriptors (1/Angstrom) in memory, or descriptor files read block by block
            (a ``.npy``/``.npz`` path, ``"file.npz:KEY"``, a list of paths or a
            :class:`jaxinfo.DescriptorSource`; see :func:`jaxinfo.open_source`).
        h: bandwidth in 1/Angstrom, scalar or 1-D array (one estimate per bandwidth, from the
            same queries).
        n_queries: number of query rows n drawn (without replacement; at most N). With
            ``target_stderr`` it is the size of the first batch.
        seed: integer seed or ``numpy.random.Generator`` (the same seed gives the same rows).
        target_stderr: optional target standard error in nats: batches are drawn until the
            standard error (the largest over bandwidths) is at most this, or every row (or
            ``max_queries``) is used.
        max_queries: optional cap on the number of queries with ``target_stderr``.
        block_size: kernel block (as in :func:`jaxinfo.log_kernel_sums`).
        block_rows: rows read per step from descriptor files (memory ~ block_rows * d).
        mesh: optional device mesh with a ``"data"`` axis (in-memory x): queries split over
            devices.
        distributed: split the queries over the processes of ``jax.distributed`` (every process
            passes the same x and seed and gets the same result).
        progress: draw tqdm progress bars (queries; blocks of descriptor files).

    Returns:
        :class:`SampledEstimate` ``(value, stderr, n_queries, n_total)`` in nats, in the
        working floating dtype (float32, or float64 with JAX x64).

    Raises:
        ValueError: for n_queries or max_queries < 1, target_stderr <= 0 or not finite, bad
            seeds, descriptors that are not (N, d) or hold NaN/inf, bad bandwidths.
"""


def estimate_entropy(
    x,
    h=DEFAULT_BANDWIDTH,
    *,
    n_queries: int = DEFAULT_N_QUERIES,
    seed=0,
    target_stderr: float | None = None,
    max_queries: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    mesh=None,
    distributed: bool = False,
    progress: bool = False,
) -> SampledEstimate:
    """Entropy H(X) from n sampled queries, each summed exactly over all N rows (O(n N)).

    ``H_hat = log N - mean_{i in sample} log p_i`` with ``p_i = sum_j K(x_i, x_j)``, the n
    rows drawn uniformly without replacement: unbiased, with standard error
    ``sqrt((1 - n/N) s^2 / n)``, s^2 the sample variance of log p_i (ddof 1). ``n = N`` gives
    :func:`jaxinfo.entropy` with standard error 0.
    {args}
    Example:
        >>> import numpy as np, jaxinfo
        >>> x = np.random.default_rng(0).normal(scale=0.01, size=(5000, 8))
        >>> est = jaxinfo.estimate_entropy(x, h=0.015, n_queries=500, seed=1)
        >>> exact = float(jaxinfo.entropy(x, h=0.015))
        >>> abs(float(est.value) - exact) < 4 * float(est.stderr)
        True
    """
    sums_of, n_total = _sums_function(
        x,
        h,
        block_size=block_size,
        block_rows=block_rows,
        mesh=mesh,
        distributed=distributed,
        progress=progress,
    )
    return _estimate(
        "entropy",
        sums_of,
        n_total,
        n_queries=n_queries,
        seed=seed,
        target_stderr=target_stderr,
        max_queries=max_queries,
        progress=progress,
    )


def estimate_diversity(
    x,
    h=DEFAULT_BANDWIDTH,
    *,
    n_queries: int = DEFAULT_N_QUERIES,
    seed=0,
    target_stderr: float | None = None,
    max_queries: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    mesh=None,
    distributed: bool = False,
    progress: bool = False,
) -> SampledEstimate:
    """Diversity D(X) = log sum_i 1/p_i from n sampled queries summed exactly over all N rows.

    ``S_hat = N mean_{i in sample} 1/p_i`` is unbiased for ``S = sum_i 1/p_i``, with standard
    error ``N sqrt((1 - n/N) s_u^2 / n)`` (s_u^2: sample variance of 1/p_i). The value
    returned is ``D_hat = log S_hat`` with the delta-method standard error
    ``se(S_hat) / S_hat``; through the logarithm ``D_hat`` is slightly biased low (about
    ``stderr^2 / 2``). ``n = N`` gives :func:`jaxinfo.diversity` with standard error 0.
    {args}
    Example:
        >>> import numpy as np, jaxinfo
        >>> x = np.random.default_rng(0).normal(scale=0.01, size=(2000, 8))
        >>> est = jaxinfo.estimate_diversity(x, h=0.015, n_queries=2000)
        >>> bool(np.isclose(est.value, jaxinfo.diversity(x, h=0.015), atol=1e-4)), est.exact
        (True, True)
    """
    sums_of, n_total = _sums_function(
        x,
        h,
        block_size=block_size,
        block_rows=block_rows,
        mesh=mesh,
        distributed=distributed,
        progress=progress,
    )
    return _estimate(
        "diversity",
        sums_of,
        n_total,
        n_queries=n_queries,
        seed=seed,
        target_stderr=target_stderr,
        max_queries=max_queries,
        progress=progress,
    )


estimate_entropy.__doc__ = estimate_entropy.__doc__.replace("{args}", _ARGS_DOC)
estimate_diversity.__doc__ = estimate_diversity.__doc__.replace("{args}", _ARGS_DOC)
