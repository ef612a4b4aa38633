"""Baselines: farthest-point sampling, k-means (as good as scikit-learn's) and random."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxinfo._buckets import geometric_bucket
from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.kernels import DEFAULT_BLOCK_SIZE
from jaxinfo.selection._data import _check_h, _check_size, _Data, _pad_host, _prepare
from jaxinfo.selection.summaries import _structure_entropies

__all__ = ["kmeans", "select_fps", "select_kmeans", "select_random"]


_FPS_MAX_BLOCK = 4096
_FPS_BLOCK_ENTRIES = 1 << 20


@functools.partial(jax.jit, static_argnames=("block",))
def _mean_distances(ref, ref_mask, x, block):
    """(N_pad,) mean over valid reference rows of ||x_i - ref_j||; x rows padded to blocks."""
    centre = jnp.sum(ref * ref_mask[:, None], axis=0) / jnp.sum(ref_mask)
    ref = ref - centre
    ref_sq = jnp.sum(ref * ref, axis=-1)
    count = jnp.sum(ref_mask)

    def one(xb):
        xb = xb - centre
        d2 = jnp.sum(xb * xb, axis=-1)[:, None] + ref_sq[None, :] - 2.0 * (xb @ ref.T)
        dist = jnp.sqrt(jnp.maximum(d2, 0.0))
        return jnp.sum(dist * ref_mask[None, :], axis=1) / count

    return jax.lax.map(one, x.reshape(-1, block, x.shape[-1])).reshape(-1)


def _structure_distances(data: _Data, x_padded, i: int) -> np.ndarray:
    """D(i, t) for every structure t: mean pairwise environment distance."""
    ref = data.parts[i]
    bucket = geometric_bucket(ref.shape[0], 1, minimum=8)
    mask = (np.arange(bucket) < ref.shape[0]).astype(ref.dtype)
    ref = _pad_host(ref, bucket)
    block = max(8, min(_FPS_MAX_BLOCK, _FPS_BLOCK_ENTRIES // bucket, x_padded.shape[0]))
    block = 1 << (block.bit_length() - 1)
    per_env = np.asarray(_mean_distances(ref, mask, x_padded, block))
    per_env = per_env[: data.x.shape[0]].astype(np.float64)
    return np.add.reduceat(per_env, data.offsets) / data.sizes


def select_fps(
    per_structure,
    size: int,
    h=DEFAULT_BANDWIDTH,
    *,
    entropies=None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """Farthest-point sampling of structures (the peer's ``fps``); deterministic.

    The distance between structures s and t is the mean Euclidean distance over all pairs of
    their environments. The highest-entropy structure seeds the selection; each step adds the
    structure whose distance to its nearest selected structure is largest (ties: lowest index).
    ``h`` is used only for the seed's entropies.

    Args:
        per_structure: list of (n_i, d) descriptor arrays.
        size: number of structures to select.
        h: bandwidth in 1/Angstrom (for the per-structure entropies).
        entropies: optional precomputed per-structure entropies.
        block_size: rows/columns per kernel block (entropies).

    Returns:
        (size,) int64 indices in selection order.
    """
    data = _prepare(per_structure)
    size, h = _check_size(size, data.n), _check_h(h)
    entropies = _structure_entropies(data, h, block_size, entropies)
    selected = [int(np.argmax(entropies))]
    nearest = np.full(data.n, np.inf)  # D to the nearest selected structure; -inf: selected
    nearest[selected[0]] = -np.inf
    bucket = geometric_bucket(data.x.shape[0], 1, minimum=8, max_step=_FPS_MAX_BLOCK)
    x_padded = jnp.asarray(_pad_host(data.x, bucket)) if size > 1 else None
    while len(selected) < size:
        nearest = np.minimum(nearest, _structure_distances(data, x_padded, selected[-1]))
        selected.append(int(np.argmax(nearest)))
        nearest[selected[-1]] = -np.inf
    return np.asarray(selected, dtype=np.int64)


def _squared_distances(a, b):
    d2 = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def _kmeans_plus_plus(points, k, rng):
    """Greedy k-means++ (as scikit-learn): of 2 + log k candidates drawn with probability
    proportional to D², keep the one that lowers the potential sum(D²) most."""
    n = len(points)
    trials = 2 + int(np.log(k))
    chosen = [int(rng.integers(n))]
    d2 = _squared_distances(points, points[chosen])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total > 0:
            candidates = np.searchsorted(np.cumsum(d2), rng.random(trials) * total)
            candidates = np.minimum(candidates, n - 1)
        else:  # every point coincides with a centre: take any unused point
            candidates = rng.choice(np.setdiff1d(np.arange(n), chosen), size=1)
        options = np.minimum(d2[None, :], _squared_distances(points[candidates], points))
        best = int(np.argmin(options.sum(axis=1)))
        chosen.append(int(candidates[best]))
        d2 = options[best]
    return points[chosen].copy()


def _lloyd(points, centres, max_iter, tol):
    """Lloyd iterations until the assignment is stable or the centres move less than tol
    (squared, summed); an empty cluster takes the point farthest from its centre."""
    for _ in range(max_iter):
        d2 = _squared_distances(points, centres)
        labels = np.argmin(d2, axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points)
        counts = np.bincount(labels, minlength=len(centres))
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
        far = np.argsort(-d2[np.arange(len(points)), labels])
        for c, point in zip(np.flatnonzero(counts == 0), far, strict=False):
            new[c] = points[point]
        shift = float(np.sum((new - centres) ** 2))
        centres = new
        if shift <= tol:
            break
    d2 = _squared_distances(points, centres)
    labels = np.argmin(d2, axis=1)
    return centres, labels, float(d2[np.arange(len(points)), labels].sum())


def kmeans(points, k: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 300):
    """k-means clustering as good as scikit-learn's ``KMeans`` (numpy, float64).

    Greedy k-means++ initialisation, Lloyd iterations to convergence (tolerance 1e-4 of the
    mean per-feature variance on the squared centre shift, as scikit-learn), best of
    ``n_init`` restarts by inertia.

    Args:
        points: (n, d) array.
        k: clusters (1 <= k <= n).
        seed: seed of ``numpy.random.default_rng``.
        n_init: restarts.
        max_iter: most Lloyd iterations per restart.

    Returns:
        ``(centres (k, d), labels (n,), inertia)``: inertia is the summed squared distance of
        the points to their centres.
    """
    points = np.asarray(points, dtype=np.float64)
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"n_init and max_iter must be >= 1, got {n_init} and {max_iter}")
    rng = np.random.default_rng(seed)
    tol = 1e-4 * float(np.mean(np.var(points, axis=0)))
    runs = [_lloyd(points, _kmeans_plus_plus(points, k, rng), max_iter, tol) for _ in range(n_init)]
    return min(runs, key=lambda run: run[2])


def select_kmeans(
    per_structure, size: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 300
) -> np.ndarray:
    """k-means on the mean descriptor of each structure; one representative per cluster.

    k = ``size`` clusters by :func:`kmeans` (greedy k-means++ from ``default_rng(seed)``, Lloyd
    to convergence, best of ``n_init`` runs by inertia, as scikit-learn). Each cluster
    contributes the member nearest its centroid (ties: lowest index); clusters are visited in
    order of decreasing size (ties: lower cluster index), so the output starts with the most
    populated regions. A cluster left empty (only possible with duplicate structures) takes
    the nearest structure not yet chosen, so the result always has ``size`` distinct indices.

    Returns:
        (size,) int64 indices.
    """
    data = _prepare(per_structure)
    size = _check_size(size, data.n)
    points = np.stack([np.asarray(p, dtype=np.float64).mean(axis=0) for p in data.parts])
    centres, labels, _ = kmeans(points, size, seed=seed, n_init=n_init, max_iter=max_iter)
    counts = np.bincount(labels, minlength=size)
    order = sorted(range(size), key=lambda c: (-counts[c], c))
    d2 = _squared_distances(points, centres)
    picked: list[int] = []
    for c in order:  # empty clusters come last in this order, after every member pick
        members = np.flatnonzero(labels == c)
        if not members.size:  # the nearest structure not yet chosen
            members = np.setdiff1d(np.arange(data.n), picked)
        picked.append(int(members[np.argmin(d2[members, c])]))
    return np.asarray(picked, dtype=np.int64)


def select_random(per_structure, size: int, *, seed: int = 0) -> np.ndarray:
    """The first ``size`` entries of ``numpy.random.default_rng(seed).permutation(n)``."""
    data = _prepare(per_structure)
    size = _check_size(size, data.n)
    return np.random.default_rng(seed).permutation(data.n)[:size].astype(np.int64)
