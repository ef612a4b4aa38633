"""Per-structure entropies and summaries of a selection (entropy, diversity, coverage)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jaxinfo.estimators import DEFAULT_BANDWIDTH, DEFAULT_OVERLAP_EPS, _reductions
from jaxinfo.kernels import DEFAULT_BLOCK_SIZE, log_kernel_sums
from jaxinfo.selection._data import _check_h, _check_indices, _Data, _lks, _prepare

__all__ = ["selection_summary", "sequential_metrics", "structure_entropies", "weighted_entropy"]


def _entropy_and_diversity(log_p) -> tuple[float, float]:
    """(H, D) from self log kernel sums: the estimators' shared reduction."""
    _, entropy, diversity = _reductions(np.asarray(log_p, dtype=np.float64))
    return float(entropy), float(diversity)


def structure_entropies(
    per_structure, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE
) -> np.ndarray:
    """Entropy H_s of each structure's own environments (the seed and bonus term of msc).

    Args:
        per_structure: list of (n_i, d) descriptor arrays.
        h: bandwidth in 1/Angstrom (scalar).
        block_size: rows/columns per kernel block.

    Returns:
        (n_structures,) float64 array of entropies in nats.
    """
    data = _prepare(per_structure)
    h = _check_h(h)
    return _structure_entropies(data, h, block_size)


def _structure_entropies(data: _Data, h: float, block_size: int, entropies=None) -> np.ndarray:
    """(n,) float64 H_s in nats: ``entropies`` checked, or computed from ``data`` when None."""
    if entropies is None:
        return np.array([_entropy_and_diversity(_lks(p, p, h, block_size))[0] for p in data.parts])
    values = np.asarray(entropies, dtype=np.float64)
    if values.shape != (data.n,):
        raise ValueError(f"entropies must have shape ({data.n},), got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("entropies contain NaN or inf")
    return values


def selection_summary(
    per_structure,
    indices,
    h=DEFAULT_BANDWIDTH,
    *,
    eps: float = DEFAULT_OVERLAP_EPS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict:
    """Entropy, diversity and coverage of a selected subset, like the peer's ``get_summary``.

    Args:
        per_structure: list of (n_i, d) descriptor arrays.
        indices: selected structure indices (distinct).
        h: bandwidth in 1/Angstrom.
        eps: overlap threshold on dH in nats.
        block_size: rows/columns per kernel block.

    Returns:
        dict with ``entropy`` and ``diversity`` of the union of the selected environments,
        ``overlap`` (fraction of all environments with dH(x | subset) < eps, i.e.
        ``jaxinfo.overlap(full, subset)``), ``original_size``, ``compressed_size`` (numbers of
        structures), ``original_envs`` and ``compressed_envs`` (numbers of environments).
    """
    data = _prepare(per_structure)
    h = _check_h(h)
    idx = _check_indices(indices, data.n)
    subset = np.concatenate([data.parts[i] for i in idx], axis=0)
    log_p = _lks(subset, subset, h, block_size)
    delta = -_lks(data.x, subset, h, block_size)  # dH(x | subset) of every environment
    entropy, diversity = _entropy_and_diversity(log_p)
    return {
        "entropy": entropy,
        "diversity": diversity,
        "overlap": float(np.mean(delta < eps)),
        "original_size": data.n,
        "compressed_size": len(idx),
        "original_envs": int(data.x.shape[0]),
        "compressed_envs": int(subset.shape[0]),
    }


def sequential_metrics(
    per_structure, indices, h=DEFAULT_BANDWIDTH, *, block_size: int = DEFAULT_BLOCK_SIZE
) -> list[dict]:
    """Entropy and diversity of every prefix of a selection, computed incrementally.

    The kernel sums of the growing set are updated with two cross sums per added structure
    (old against new, new against old), so the whole curve costs about one pass over the
    selected environments, as the peer's ``sequential_metrics``.

    Returns:
        One dict per prefix with ``n_envs``, ``n_structs``, ``entropy`` and ``diversity`` (nats).
    """
    data = _prepare(per_structure)
    h = _check_h(h)
    idx = _check_indices(indices, data.n)
    results, current, log_p = [], None, None  # current: the prefix's environments
    for count, i in enumerate(idx, start=1):
        new = data.parts[i]
        new_log_p = _lks(new, new, h, block_size)
        if current is None:
            current, log_p = new, new_log_p
        else:  # cross sums: old environments against new, new against old
            old_log_p = np.logaddexp(log_p, _lks(current, new, h, block_size))
            new_log_p = np.logaddexp(new_log_p, _lks(new, current, h, block_size))
            log_p = np.concatenate([old_log_p, new_log_p])
            current = np.concatenate([current, new], axis=0)
        entropy, diversity = _entropy_and_diversity(log_p)
        results.append(
            {"n_envs": len(log_p), "n_structs": count, "entropy": entropy, "diversity": diversity}
        )
    return results


def weighted_entropy(x, log_weights, h=DEFAULT_BANDWIDTH, *, block_size=DEFAULT_BLOCK_SIZE):
    """Entropy of a weighted set of environments, differentiable with respect to the weights.

    ``H_w = -sum_e v_e/V log( sum_f v_f K(x_e, x_f) / V )`` with ``v = exp(log_weights)`` and
    ``V = sum_f v_f``. With 0/1 weights it equals :func:`jaxinfo.entropy` of the environments
    of weight 1; ``log_weights = -inf`` removes an environment. Differentiable (blocked custom
    VJP of :func:`jaxinfo.log_kernel_sums`) with respect to ``log_weights`` and ``x``.

    Args:
        x: (N, d) descriptors.
        log_weights: (N,) log-weights, at least one finite.
        h: scalar bandwidth in 1/Angstrom.
        block_size: rows/columns per kernel block.

    Returns:
        Scalar entropy in nats.
    """
    log_weights = jnp.asarray(log_weights)
    log_sums = log_kernel_sums(x, x, h, log_weights=log_weights, block_size=block_size)
    log_total = logsumexp(log_weights)
    shares = jax.nn.softmax(log_weights)
    return log_total - jnp.sum(shares * log_sums)
