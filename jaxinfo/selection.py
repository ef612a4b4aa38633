"""Selecting informative subsets of structures (the peer package's "compression").

Every method takes ``per_structure``, a list of (n_i, d) descriptor arrays (one per structure),
and returns the indices of ``size`` distinct structures **in selection order** as an int64 numpy
array. :func:`select` dispatches on ``method``:

``"msc"`` (:func:`select_msc`)
    Greedy minimum set coverage. The first structure is the one of highest own entropy H_s
    (entropy of its own environments). Every environment e of every structure keeps its
    accumulated kernel sum A_e = sum_f K(x_e, x_f) over the environments f of all structures
    selected so far, updated with one kernel sum per step against the newly selected structure
    (in log space: ``log A <- logaddexp(log A, log_kernel_sums(x, x_new))``). Each step picks
    the unselected structure maximising ``-log(min_{e in s} A_e) + H_s``: the novelty of its
    least covered environment plus its own entropy.
``"msc_conditional"`` (:func:`select_msc_conditional`)
    As msc, with A_e starting from the kernel sums against a ``reference`` set of descriptors
    (data already held) and no seed step: the first pick is already scored by the rule above.
``"fps"`` (:func:`select_fps`)
    Farthest-point sampling with the structure distance D(s, t) = mean over all environment
    pairs (a in s, b in t) of the Euclidean distance ||x_a - x_b||; seeded by the highest-entropy
    structure, each step picks the structure whose smallest D to the selected ones is largest.
``"kmeans"`` (:func:`select_kmeans`)
    k-means (k = size, k-means++ initialisation from ``seed``, Lloyd iterations) on the mean
    descriptor of each structure; each cluster contributes the member nearest its centroid.
    Order: by decreasing cluster size (most populated region first), ties by cluster index.
``"random"`` (:func:`select_random`)
    The first ``size`` entries of a permutation drawn with ``numpy.random.default_rng(seed)``.
``"gradient"`` (:func:`select_gradient`)
    Continuous relaxation: one inclusion weight w_s in [0, 1] per structure, sum_s w_s = size
    (the capped simplex), maximising a relaxed entropy (or diversity) of the weighted union of
    environments by projected Adam ascent in one jit-compiled loop (three relaxations vmapped);
    each is rounded to its ``size`` largest weights, the best rounding by the exact objective
    is kept and polished by gradient-guided swaps. Returned in order of decreasing weight.

Matching the peer (quests 2026.2.22, ``quests.compression.fps``): seeds and every greedy step
break ties by the lowest structure index (``numpy.argmax``), as the peer does; msc uses
min over environments of A_e exactly as the peer (min of log A_e is the same number). The one
deliberate difference: the peer accumulates A_e in linear space, so an environment farther than
about 38 h from every selected one gets A_e = 0 and a score of +inf, and all such structures tie
at +inf (the lowest index wins, whatever its entropy). Here A_e is kept in log space, so the
novelty stays finite and such structures are still ranked by novelty plus entropy. Away from
that underflow regime the selections are identical. The peer's fps uses the same distance and
seed. Its baselines are not parity targets: its k_means (scikit-learn) draws a random member of
each cluster and skips the last cluster label, and its random_sample uses the unseeded
``random`` module.

Entropy-driven selections (msc, gradient) favour the most diverse environments; they maximise
coverage of environment space, which need not be what a given model's error needs
(``experiments/selection.py`` compares them with k-means and random on a regression task).

Entropies are in nats, bandwidths h in 1/Angstrom. Descriptors keep their dtype (float32 by
default, float64 with JAX x64 enabled).
"""

from __future__ import annotations

import functools
import math
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jaxinfo._validation import check_bandwidth
from jaxinfo.estimators import (
    DEFAULT_BANDWIDTH,
    DEFAULT_OVERLAP_EPS,
)
from jaxinfo.kernels import DEFAULT_BLOCK_SIZE, log_kernel_sums, padded_length

__all__ = [
    "METHODS",
    "GradientResult",
    "select",
    "select_fps",
    "select_gradient",
    "select_kmeans",
    "select_msc",
    "select_msc_conditional",
    "select_random",
    "selection_summary",
    "sequential_metrics",
    "structure_entropies",
    "weighted_entropy",
]

#: Names accepted by :func:`select`.
METHODS = ("msc", "msc_conditional", "fps", "kmeans", "random", "gradient")

# Above this many (environment, structure) entries the gradient method stops precomputing the
# per-structure kernel-sum matrix and evaluates blocked kernel sums at every step instead.
_MAX_MATRIX_ENTRIES = 1 << 24
# Floor added to inclusion weights inside logarithms (blocked gradient path), so that the
# gradient at w = 0 or w = 1 stays finite; it perturbs kernel sums by < 1e-9 * N.
_WEIGHT_FLOOR = 1e-9


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


class _Data(NamedTuple):
    """A validated dataset: all environments stacked in structure order."""

    x: np.ndarray  # (N, d), in JAX's canonical floating dtype
    parts: list  # n numpy arrays (n_i, d)
    sizes: np.ndarray  # (n,) environments per structure
    offsets: np.ndarray  # (n,) first row of each structure in x
    owner: np.ndarray  # (N,) structure index of each row

    @property
    def n(self) -> int:
        return len(self.parts)


def _prepare(per_structure) -> _Data:
    if isinstance(per_structure, (np.ndarray, jax.Array)):
        if per_structure.ndim != 3:
            raise ValueError(
                "per_structure must be a list of (n_i, d) descriptor arrays, one per structure "
                f"(or a 3-D array); got one array of shape {tuple(per_structure.shape)}"
            )
        per_structure = list(per_structure)
    try:
        items = list(per_structure)
    except TypeError:
        raise ValueError(
            "per_structure must be a list of (n_i, d) descriptor arrays, one per structure"
        ) from None
    if not items:
        raise ValueError("per_structure is empty: no structures to select from")
    arrays = []
    for i, a in enumerate(items):
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float64)
        if a.ndim != 2:
            raise ValueError(
                f"structure {i}: descriptors must be a 2-D array (n_i, d), got shape {a.shape}"
            )
        if a.shape[0] == 0:
            raise ValueError(f"structure {i} has no environments (0 rows)")
        arrays.append(a)
    widths = sorted({a.shape[1] for a in arrays})
    if len(widths) > 1:
        first = next(i for i, a in enumerate(arrays) if a.shape[1] != arrays[0].shape[1])
        raise ValueError(
            f"inconsistent descriptor widths: structure 0 has {arrays[0].shape[1]} columns, "
            f"structure {first} has {arrays[first].shape[1]} (widths found: {widths})"
        )
    # Stacked on the host: JAX would compile a concatenation for every new combination of shapes.
    # The dtype follows JAX's canonical dtype (float32 unless x64 is enabled).
    dtype = jax.dtypes.canonicalize_dtype(np.result_type(*[a.dtype for a in arrays]))
    arrays = [a.astype(dtype, copy=False) for a in arrays]
    x = np.concatenate(arrays, axis=0)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(f"descriptors contain NaN or inf (stacked row {int(np.argmin(finite))})")
    sizes = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(len(arrays)), sizes)
    return _Data(x=x, parts=arrays, sizes=sizes, offsets=offsets, owner=owner)


def _check_size(size, n: int) -> int:
    if isinstance(size, bool):
        raise ValueError(f"size must be an integer, got {size!r}")
    try:
        size = operator.index(size)
    except TypeError:
        raise ValueError(f"size must be an integer, got {size!r}") from None
    if size < 1 or size > n:
        raise ValueError(f"size must be between 1 and the number of structures ({n}), got {size}")
    return int(size)


def _check_h(h) -> float:
    arr = check_bandwidth(h)
    if arr.ndim != 0:
        raise ValueError(f"selection needs a single bandwidth h, got an array of shape {arr.shape}")
    return float(arr)


def _check_entropies(entropies, n: int) -> np.ndarray:
    values = np.asarray(entropies, dtype=np.float64)
    if values.shape != (n,):
        raise ValueError(f"entropies must have shape ({n},), got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("entropies contain NaN or inf")
    return values


def _check_indices(indices, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError(f"indices must be a non-empty 1-D sequence, got shape {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"indices must lie in [0, {n}), got min {idx.min()} and max {idx.max()}")
    if len(np.unique(idx)) != len(idx):
        raise ValueError("indices contain duplicates")
    return idx.astype(np.int64)


def _bucket(n: int, block_size: int) -> int:
    block, n_blocks = padded_length(n, block_size)
    return block * n_blocks


def _pad_host(a: np.ndarray, n: int) -> np.ndarray:
    """Pads rows to n by repeating the first row (keeps the centring of the kernel inside data)."""
    if a.shape[0] == n:
        return a
    return np.concatenate([a, np.broadcast_to(a[:1], (n - a.shape[0], a.shape[1]))], axis=0)


def _lks(y, x, h, block_size) -> np.ndarray:
    """log sum_j K(y_i, x_j) as a float64 numpy array (``y is x`` keeps exact self pairs).

    :func:`log_kernel_sums` pads concrete inputs to its block buckets on the host, so sizes in
    one bucket share a compilation.
    """
    out = log_kernel_sums(y, x, h, block_size=block_size)
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Per-structure quantities and summaries
# --------------------------------------------------------------------------------------------


def _entropy_from_log_p(log_p) -> float:
    """H = log N - mean log p."""
    return float(math.log(len(log_p)) - np.mean(log_p))


def _diversity_from_log_p(log_p) -> float:
    """D = log sum 1/p, as a log-sum-exp."""
    top = np.max(-log_p)
    return float(top + np.log(np.sum(np.exp(-log_p - top))))


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


def _structure_entropies(data: _Data, h: float, block_size: int) -> np.ndarray:
    return np.array([_entropy_from_log_p(_lks(p, p, h, block_size)) for p in data.parts])


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
    return {
        "entropy": _entropy_from_log_p(log_p),
        "diversity": _diversity_from_log_p(log_p),
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
        One dict per prefix with ``n_envs``, ``n_structs``, ``entropy``, ``diversity``.
    """
    data = _prepare(per_structure)
    h = _check_h(h)
    idx = _check_indices(indices, data.n)
    results = []
    current = None
    log_p = None
    for count, i in enumerate(idx, start=1):
        new = data.parts[i]
        new_log_p = _lks(new, new, h, block_size)
        if current is None:
            current, log_p = new, new_log_p
        else:
            old_log_p = np.logaddexp(log_p, _lks(current, new, h, block_size))
            new_log_p = np.logaddexp(new_log_p, _lks(new, current, h, block_size))
            log_p = np.concatenate([old_log_p, new_log_p])
            current = np.concatenate([current, new], axis=0)
        results.append(
            {
                "n_envs": len(log_p),
                "n_structs": count,
                "entropy": _entropy_from_log_p(log_p),
                "diversity": _diversity_from_log_p(log_p),
            }
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


# --------------------------------------------------------------------------------------------
# Greedy minimum set coverage
# --------------------------------------------------------------------------------------------


def _msc(data: _Data, size, h, entropies, log_cover, block_size) -> np.ndarray:
    """Greedy msc from accumulated log kernel sums ``log_cover`` (None: seed step first)."""
    available = np.ones(data.n, dtype=bool)
    selected: list[int] = []

    def take(i):
        selected.append(i)
        available[i] = False

    if log_cover is None:
        log_cover = np.full(data.x.shape[0], -np.inf)
        take(int(np.argmax(entropies)))
        if size > 1:
            log_cover = np.logaddexp(
                log_cover, _lks(data.x, data.parts[selected[-1]], h, block_size)
            )
    while len(selected) < size:
        worst = np.minimum.reduceat(log_cover, data.offsets)  # log min_{e in s} A_e
        score = np.where(available, entropies - worst, -np.inf)
        take(int(np.argmax(score)))
        if len(selected) < size:
            new = _lks(data.x, data.parts[selected[-1]], h, block_size)
            log_cover = np.logaddexp(log_cover, new)
    return np.asarray(selected, dtype=np.int64)


def select_msc(
    per_structure,
    size: int,
    h=DEFAULT_BANDWIDTH,
    *,
    entropies=None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """Greedy minimum set coverage (the peer's ``msc``); deterministic.

    Seeds with the structure of highest own entropy, then repeatedly adds the structure that
    maximises ``-log(min_{e in s} A_e) + H_s``, where A_e is the kernel sum of environment e
    over all selected environments. Ties go to the lowest index.

    Args:
        per_structure: list of (n_i, d) descriptor arrays.
        size: number of structures to select, 1 <= size <= len(per_structure).
        h: bandwidth in 1/Angstrom.
        entropies: optional precomputed per-structure entropies (:func:`structure_entropies`).
        block_size: rows/columns per kernel block.

    Returns:
        (size,) int64 indices in selection order.

    Example:
        >>> import numpy as np
        >>> from jaxinfo.selection import select_msc
        >>> rng = np.random.default_rng(0)
        >>> structures = [rng.normal(scale=s, size=(16, 5)) for s in (0.01, 0.1, 0.02, 0.09)]
        >>> select_msc(structures, 2, h=0.05).tolist()
        [1, 3]
    """
    data = _prepare(per_structure)
    size, h = _check_size(size, data.n), _check_h(h)
    entropies = (
        _structure_entropies(data, h, block_size)
        if entropies is None
        else _check_entropies(entropies, data.n)
    )
    return _msc(data, size, h, entropies, None, block_size)


def select_msc_conditional(
    per_structure,
    size: int,
    reference,
    h=DEFAULT_BANDWIDTH,
    *,
    entropies=None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """msc conditioned on data already held (the peer's ``msc_conditional``).

    A_e starts as the kernel sum of each candidate environment over ``reference``, and there is
    no seed step: the first structure is already the one of largest
    ``-log(min_{e in s} A_e) + H_s``. An empty reference falls back to :func:`select_msc`, as
    in the peer.

    Args:
        per_structure: list of (n_i, d) candidate descriptor arrays.
        size: number of candidates to select.
        reference: (m, d) descriptors already held, or a list of such arrays.
        h: bandwidth in 1/Angstrom.
        entropies: optional precomputed per-structure entropies of the candidates.
        block_size: rows/columns per kernel block.

    Returns:
        (size,) int64 candidate indices in selection order.
    """
    data = _prepare(per_structure)
    size, h = _check_size(size, data.n), _check_h(h)
    ref = _prepare_reference(reference, data)
    entropies = (
        _structure_entropies(data, h, block_size)
        if entropies is None
        else _check_entropies(entropies, data.n)
    )
    if ref is None:
        return _msc(data, size, h, entropies, None, block_size)
    log_cover = _lks(data.x, ref, h, block_size)
    return _msc(data, size, h, entropies, log_cover, block_size)


def _prepare_reference(reference, data: _Data):
    """(m, d) reference array, or None for an empty reference; checks its width."""
    if reference is None:
        raise ValueError("msc_conditional needs reference= descriptors (an (m, d) array)")
    if isinstance(reference, (list, tuple)):
        parts = [np.asarray(r) for r in reference]
        parts = [p for p in parts if p.size > 0]
        if not parts:
            return None
        for p in parts:
            if p.ndim != 2:
                raise ValueError(f"reference arrays must be 2-D (m, d), got shape {p.shape}")
        widths = {p.shape[1] for p in parts}
        if len(widths) > 1:
            raise ValueError(f"reference arrays have inconsistent widths {sorted(widths)}")
        ref = np.concatenate(parts, axis=0)
    else:
        ref = np.asarray(reference)
        if ref.ndim != 2:
            raise ValueError(f"reference must be a 2-D array (m, d), got shape {ref.shape}")
        if ref.shape[0] == 0:
            return None
    if ref.shape[1] != data.x.shape[1]:
        raise ValueError(
            f"reference width {ref.shape[1]} differs from the descriptor width "
            f"{data.x.shape[1]} of the structures"
        )
    if not np.isfinite(ref).all():
        raise ValueError("reference descriptors contain NaN or inf")
    return ref.astype(data.x.dtype)


# --------------------------------------------------------------------------------------------
# Farthest-point sampling
# --------------------------------------------------------------------------------------------

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
    bucket = max(8, 1 << (int(ref.shape[0]) - 1).bit_length())
    mask = (np.arange(bucket) < ref.shape[0]).astype(ref.dtype)
    ref = _pad_host(ref, bucket)
    block = max(8, min(_FPS_MAX_BLOCK, _FPS_BLOCK_ENTRIES // bucket, x_padded.shape[0]))
    block = 1 << (block.bit_length() - 1)
    per_env = np.asarray(_mean_distances(ref, mask, x_padded, block))
    per_env = per_env[: data.x.shape[0]].astype(np.float64)
    return np.add.reduceat(per_env, data.offsets) / data.sizes


def _pad_environments(x):
    n = x.shape[0]
    if n <= _FPS_MAX_BLOCK:
        target = max(8, 1 << (n - 1).bit_length())
    else:
        target = -(-n // _FPS_MAX_BLOCK) * _FPS_MAX_BLOCK
    return jnp.asarray(_pad_host(x, target))


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
    entropies = (
        _structure_entropies(data, h, block_size)
        if entropies is None
        else _check_entropies(entropies, data.n)
    )
    selected = [int(np.argmax(entropies))]
    available = np.ones(data.n, dtype=bool)
    available[selected[0]] = False
    nearest = np.full(data.n, np.inf)
    x_padded = _pad_environments(data.x) if size > 1 else None
    while len(selected) < size:
        nearest = np.minimum(nearest, _structure_distances(data, x_padded, selected[-1]))
        pick = int(np.argmax(np.where(available, nearest, -np.inf)))
        selected.append(pick)
        available[pick] = False
    return np.asarray(selected, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Baselines: k-means and random
# --------------------------------------------------------------------------------------------


def _squared_distances(a, b):
    d2 = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def _kmeans_plus_plus(points, k, rng):
    n = len(points)
    chosen = [int(rng.integers(n))]
    d2 = _squared_distances(points, points[chosen])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total > 0:
            i = int(rng.choice(n, p=d2 / total))
        else:  # every point coincides with a centre: take any unused point
            unused = np.setdiff1d(np.arange(n), chosen)
            i = int(rng.choice(unused))
        chosen.append(i)
        d2 = np.minimum(d2, _squared_distances(points, points[i : i + 1])[:, 0])
    return points[chosen].copy()


def _lloyd(points, centres, max_iter):
    labels = None
    for _ in range(max_iter):
        d2 = _squared_distances(points, centres)
        new_labels = np.argmin(d2, axis=1)
        if labels is not None and np.array_equal(labels, new_labels):
            break
        labels = new_labels
        for c in range(len(centres)):
            members = labels == c
            if members.any():
                centres[c] = points[members].mean(axis=0)
            else:  # empty cluster: move it to the point farthest from its own centre
                far = int(np.argmax(d2[np.arange(len(points)), labels]))
                centres[c] = points[far]
                d2[far] = 0.0
    d2 = _squared_distances(points, centres)
    labels = np.argmin(d2, axis=1)
    return centres, labels, float(d2[np.arange(len(points)), labels].sum())


def select_kmeans(
    per_structure, size: int, *, seed: int = 0, n_init: int = 4, max_iter: int = 100
) -> np.ndarray:
    """k-means on the mean descriptor of each structure; one representative per cluster.

    k = ``size`` clusters, k-means++ initialisation drawn from ``default_rng(seed)``, Lloyd
    iterations until the assignment is stable (at most ``max_iter``), best of ``n_init`` runs
    by inertia. Each cluster contributes the member nearest its centroid (ties: lowest index);
    clusters are visited in order of decreasing size (ties: lower cluster index), so the
    output starts with the most populated regions. A cluster left empty (only possible with
    duplicate structures) takes the nearest structure not yet chosen, so the result always has
    ``size`` distinct indices.

    Returns:
        (size,) int64 indices.
    """
    data = _prepare(per_structure)
    size = _check_size(size, data.n)
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"n_init and max_iter must be >= 1, got {n_init} and {max_iter}")
    points = np.stack([np.asarray(p, dtype=np.float64).mean(axis=0) for p in data.parts])
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        centres = _kmeans_plus_plus(points, size, rng)
        result = _lloyd(points, centres, max_iter)
        if best is None or result[2] < best[2]:
            best = result
    centres, labels, _ = best
    counts = np.bincount(labels, minlength=size)
    order = sorted(range(size), key=lambda c: (-counts[c], c))
    d2 = _squared_distances(points, centres)
    picked: list[int] = []
    for c in order:
        members = np.flatnonzero(labels == c)
        if members.size:
            picked.append(int(members[np.argmin(d2[members, c])]))
    for c in order:
        if counts[c] == 0:
            free = np.setdiff1d(np.arange(data.n), picked)
            picked.append(int(free[np.argmin(d2[free, c])]))
    return np.asarray(picked, dtype=np.int64)


def select_random(per_structure, size: int, *, seed: int = 0) -> np.ndarray:
    """The first ``size`` entries of ``numpy.random.default_rng(seed).permutation(n)``."""
    data = _prepare(per_structure)
    size = _check_size(size, data.n)
    return np.random.default_rng(seed).permutation(data.n)[:size].astype(np.int64)


# --------------------------------------------------------------------------------------------
# Gradient-based selection
# --------------------------------------------------------------------------------------------

#: Own-structure mixing (lam at the start, lam at the end) of each relaxation; see _mixing.
_SCHEDULES = {"weighted": (0.0, 0.0), "annealed": (0.0, 1.0), "mean_field": (1.0, 1.0)}
_RELAXATIONS = ("auto", *_SCHEDULES)
#: Candidate swaps evaluated per polishing round (the m lowest-gradient selected structures
#: times the m highest-gradient unselected ones).
_SWAP_CANDIDATES = 4


def _relaxed_objective(log_q, w, sizes, owner, objective):
    """Entropy or diversity of the weighted union from the log densities log q_e."""
    env_weights = w[owner]  # v_e = w_{s(e)}
    if objective == "entropy":
        total = jnp.sum(sizes * w)
        return jnp.log(total) - jnp.sum(env_weights * log_q) / total
    return logsumexp(-log_q, b=env_weights)


def _matrix_log_q(w, lam, log_max, scaled, own, floor, owner):
    """log q_e from the per-structure kernel-sum matrix.

    ``scaled[e, t] = exp(log S_et - log_max_e)`` with S_et = sum_{f in t} K(x_e, x_f), its own
    column zeroed; ``own[e]`` is that own column. The own structure enters at weight
    ``w_s + lam (1 - w_s)``; ``floor`` (1e-9 of the row sum) keeps q_e > 0 at w = 0.
    """
    w_own = w[owner]
    r = scaled @ w + own * (w_own + lam * (1.0 - w_own)) + floor
    return log_max + jnp.log(r)


def _blocked_log_q(w, lam, x, own_log, owner, h, block_size):
    """log q_e by blocked kernel sums over all environments at every evaluation."""
    v = w[owner]
    log_sums = log_kernel_sums(
        x, x, h, log_weights=jnp.log(v + _WEIGHT_FLOOR), block_size=block_size
    )
    return jnp.logaddexp(log_sums, jnp.log(lam * (1.0 - v) + _WEIGHT_FLOOR) + own_log)


def _objective_fn(arrays, sizes, owner, objective, blocked, block_size):
    """f(w, lam): the relaxed objective (exact subset objective at 0/1 weights and lam = 1)."""

    def fn(w, lam):
        if blocked:
            x, own_log, h = arrays
            log_q = _blocked_log_q(w, lam, x, own_log, owner, h, block_size)
        else:
            log_max, scaled, own, floor = arrays
            log_q = _matrix_log_q(w, lam, log_max, scaled, own, floor, owner)
        return _relaxed_objective(log_q, w, sizes, owner, objective)

    return fn


def _project_capped_simplex(u, size, iterations=64):
    """Euclidean projection onto {0 <= w <= 1, sum w = size}: clip(u - tau, 0, 1), bisecting tau."""
    lo = jnp.min(u) - 1.0
    hi = jnp.max(u)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        too_big = jnp.sum(jnp.clip(u - mid, 0.0, 1.0)) > size
        return jnp.where(too_big, mid, lo), jnp.where(too_big, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    return jnp.clip(u - 0.5 * (lo + hi), 0.0, 1.0)


def _mixing(schedule, t, steps):
    """lam at step t: schedule[0] for the first quarter, a linear ramp to schedule[1] over the
    middle half, schedule[1] for the last quarter."""
    ramp = jnp.clip((t / steps - 0.25) / 0.5, 0.0, 1.0)
    return schedule[0] + (schedule[1] - schedule[0]) * ramp


def _ascent(fn, w0, schedule, size, learning_rate, steps):
    """Projected Adam ascent on the capped simplex with a cosine-decayed step."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    value_and_grad = jax.value_and_grad(fn)

    def step(carry, t):
        w, m, v = carry
        value, g = value_and_grad(w, _mixing(schedule, t, steps))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        lr = learning_rate * (0.1 + 0.45 * (1 + jnp.cos(jnp.pi * t / steps)))
        w = _project_capped_simplex(w + lr * m_hat / (jnp.sqrt(v_hat) + eps), size)
        return (w, m, v), value

    zeros = jnp.zeros_like(w0)
    t = jnp.arange(1, steps + 1, dtype=w0.dtype)
    (w, _, _), history = jax.lax.scan(step, (w0, zeros, zeros), t)
    return w, history


@functools.partial(jax.jit, static_argnames=("steps", "objective", "blocked", "block_size"))
def _run_ascents(
    w0,
    schedules,
    size,
    learning_rate,
    arrays,
    sizes,
    owner,
    *,
    steps,
    objective,
    blocked,
    block_size,
):
    """All relaxations' ascents (vmapped over schedules) as one compiled function."""
    fn = _objective_fn(arrays, sizes, owner, objective, blocked, block_size)
    return jax.vmap(lambda s: _ascent(fn, w0, s, size, learning_rate, steps))(schedules)


@functools.partial(jax.jit, static_argnames=("objective", "blocked", "block_size"))
def _exact_values(w_batch, arrays, sizes, owner, *, objective, blocked, block_size):
    """Exact objective of a batch of 0/1 weight vectors (lam = 1)."""
    fn = _objective_fn(arrays, sizes, owner, objective, blocked, block_size)
    return jax.vmap(lambda w: fn(w, 1.0))(w_batch)


@functools.partial(jax.jit, static_argnames=("objective", "blocked", "block_size"))
def _exact_value_and_grad(w, arrays, sizes, owner, *, objective, blocked, block_size):
    fn = _objective_fn(arrays, sizes, owner, objective, blocked, block_size)
    return jax.value_and_grad(lambda w: fn(w, 1.0))(w)


def _top(weights, size):
    """Indices of the ``size`` largest weights, largest first (ties: lowest index)."""
    return np.argsort(-weights, kind="stable")[:size]


class GradientResult(NamedTuple):
    """Details of a gradient selection (``select_gradient(..., return_details=True)``).

    Attributes:
        indices: (size,) selected indices, in order of decreasing relaxed weight.
        weights: (n,) final relaxed weights (in [0, 1], summing to size) of the relaxation
            whose rounding was kept.
        relaxation: name of that relaxation.
        objective: exact objective (entropy or diversity, nats) of the returned subset.
        rounded: exact objective of each relaxation's top-``size`` rounding, by name.
        swaps: number of polishing swaps accepted.
        history: relaxed objective along each ascent, by name, (steps,) each.
    """

    indices: np.ndarray
    weights: np.ndarray
    relaxation: str
    objective: float
    rounded: dict
    swaps: int
    history: dict


def select_gradient(
    per_structure,
    size: int,
    h=DEFAULT_BANDWIDTH,
    *,
    seed: int = 0,
    objective: str = "entropy",
    relaxation: str = "auto",
    steps: int = 300,
    learning_rate: float = 0.05,
    max_swaps: int | None = None,
    mode: str = "auto",
    block_size: int = DEFAULT_BLOCK_SIZE,
    return_details: bool = False,
):
    """Gradient-based selection: relax inclusion to weights, ascend, round, polish.

    **Relaxation.** Each structure s gets a weight w_s in [0, 1] with sum_s w_s = size (the
    capped simplex: the convex hull of all subsets of that size); its environments inherit
    v_e = w_s. With q_e a weighted kernel density at environment e, the objective is

    * ``objective="entropy"``: ``H(w) = log V - sum_e (v_e / V) log q_e``, ``V = sum_e v_e``;
    * ``objective="diversity"``: ``D(w) = log sum_e v_e / q_e``.

    Two densities, both equal to the kernel sum over the selected environments at 0/1 weights
    (so both objectives are then exactly the entropy or diversity of the selected subset):

    * weighted: ``q_e = sum_f v_f K(x_e, x_f)``, i.e. ``H(w)`` is the weighted entropy
      ``-sum_e v_e/V log(sum_f v_f K(x_e, x_f) / V)`` of :func:`weighted_entropy`;
    * mean field: ``q_e = sum_{f in s(e)} K(x_e, x_f) + sum_{t != s(e)} w_t sum_{f in t}
      K(x_e, x_f)``, the expected kernel sum of e given that its own structure is selected
      when the others are included independently with probabilities w_t.

    The weighted objective is smooth but rewards spreading weight (a fractional weighting acts
    like extra distinct samples), so its optimum is fractional and only its ranking is used; the
    mean-field objective penalises splitting weight between near-duplicates and has optima at or
    near vertices, but flat directions and poorer local optima. ``relaxation`` is one of
    ``"weighted"``, ``"mean_field"``, ``"annealed"`` (weighted for the first quarter of the
    steps, then a linear homotopy to mean field) or ``"auto"`` (default: all three, vmapped in
    one compiled loop, keeping the rounding with the best exact objective).

    **Ascent.** From w = size/n plus seeded noise (``default_rng(seed)``, amplitude 0.05),
    ``steps`` projected Adam steps (step ``learning_rate``, cosine-decayed to a tenth;
    Euclidean projection onto the capped simplex by bisection), all in one jit-compiled
    ``lax.scan``.

    **Rounding.** Each relaxation's weights are rounded to their ``size`` largest (ties: lowest
    index); the rounding with the best exact objective is kept. **Polish** (``max_swaps``,
    default ``size``; 0 disables): gradient-guided swaps on the exact objective: the gradient at
    the 0/1 point ranks the selected structures (lowest first) and the unselected ones
    (highest first); the best improving swap among the top 4 x 4 is applied, until none
    improves. Indices are returned in order of decreasing relaxed weight of the kept
    relaxation.

    **Evaluation.** ``mode="matrix"`` precomputes the (N_env, n) matrix of per-structure kernel
    sums (one blocked :func:`jaxinfo.log_kernel_sums` per structure; O(N_env^2) once), after
    which every evaluation is a matrix-vector product. ``mode="blocked"`` evaluates
    ``log_kernel_sums(x, x, h, log_weights=log v)`` (differentiable with respect to the
    log-weights) at every step: memory O(block^2), time O(N_env^2) per step and per relaxation.
    ``mode="auto"`` takes the matrix when it has at most 2^24 entries.

    Args:
        per_structure: list of (n_i, d) descriptor arrays.
        size: number of structures to select.
        h: bandwidth in 1/Angstrom.
        seed: seed of the initial noise.
        objective: ``"entropy"`` or ``"diversity"``.
        relaxation: ``"auto"``, ``"weighted"``, ``"mean_field"`` or ``"annealed"``.
        steps: number of ascent steps.
        learning_rate: initial Adam step (weights live in [0, 1]).
        max_swaps: most polishing swaps (default ``size``; 0 keeps the plain rounding).
        mode: ``"auto"``, ``"matrix"`` or ``"blocked"``.
        block_size: rows/columns per kernel block.
        return_details: return a :class:`GradientResult` instead of the indices.

    Returns:
        (size,) int64 indices in order of decreasing weight, or a :class:`GradientResult`.
    """
    data = _prepare(per_structure)
    size, h = _check_size(size, data.n), _check_h(h)
    if objective not in ("entropy", "diversity"):
        raise ValueError(f"objective must be 'entropy' or 'diversity', got {objective!r}")
    if relaxation not in _RELAXATIONS:
        raise ValueError(f"relaxation must be one of {_RELAXATIONS}, got {relaxation!r}")
    if mode not in ("auto", "matrix", "blocked"):
        raise ValueError(f"mode must be 'auto', 'matrix' or 'blocked', got {mode!r}")
    steps = operator.index(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    max_swaps = size if max_swaps is None else operator.index(max_swaps)
    if max_swaps < 0:
        raise ValueError(f"max_swaps must be >= 0, got {max_swaps}")
    n, n_env = data.n, int(data.x.shape[0])
    dtype = data.x.dtype
    if mode == "auto":
        mode = "matrix" if n * n_env <= _MAX_MATRIX_ENTRIES else "blocked"
    names = list(_SCHEDULES) if relaxation == "auto" else [relaxation]

    if mode == "matrix":
        log_s = np.stack([_lks(data.x, p, h, block_size) for p in data.parts], axis=1)
        log_max = log_s.max(axis=1)
        scaled = np.exp(log_s - log_max[:, None])
        rows = np.arange(n_env)
        own = scaled[rows, data.owner].copy()
        floor = _WEIGHT_FLOOR * scaled.sum(axis=1)
        scaled[rows, data.owner] = 0.0
        arrays = tuple(jnp.asarray(a, dtype=dtype) for a in (log_max, scaled, own, floor))
    else:
        own_log = np.concatenate([_lks(p, p, h, block_size) for p in data.parts])
        arrays = (jnp.asarray(data.x), jnp.asarray(own_log, dtype=dtype), jnp.asarray(h, dtype))
    static = {"objective": objective, "blocked": mode == "blocked", "block_size": int(block_size)}
    common = (arrays, jnp.asarray(data.sizes, dtype=dtype), jnp.asarray(data.owner))

    rng = np.random.default_rng(seed)
    w0 = size / n + 0.05 * rng.uniform(-1.0, 1.0, n)
    w0 = _project_capped_simplex(jnp.asarray(w0, dtype=dtype), size)
    schedules = jnp.asarray([_SCHEDULES[name] for name in names], dtype=dtype)
    w_final, history = _run_ascents(
        w0,
        schedules,
        jnp.asarray(size, dtype=dtype),
        jnp.asarray(learning_rate, dtype=dtype),
        *common,
        steps=steps,
        **static,
    )
    w_final = np.asarray(w_final, dtype=np.float64)

    def binary(index_sets):
        out = np.zeros((len(index_sets), n), dtype=dtype)
        for row, chosen in enumerate(index_sets):
            out[row, chosen] = 1.0
        return out

    roundings = [_top(w, size) for w in w_final]
    values = np.asarray(_exact_values(binary(roundings), *common, **static), dtype=np.float64)
    best = int(np.argmax(values))  # ties: the first relaxation in _SCHEDULES order
    chosen = set(roundings[best].tolist())
    value = values[best]

    swaps = 0
    m = _SWAP_CANDIDATES
    while swaps < max_swaps and size < n:
        current = binary([sorted(chosen)])[0]
        _, grad = _exact_value_and_grad(jnp.asarray(current), *common, **static)
        grad = np.asarray(grad, dtype=np.float64)
        inside = np.array(sorted(chosen))
        outside = np.setdiff1d(np.arange(n), inside)
        leave = inside[np.argsort(grad[inside], kind="stable")[:m]]
        enter = outside[np.argsort(-grad[outside], kind="stable")[:m]]
        pairs = [(a, b) for a in leave for b in enter]
        pairs += [pairs[-1]] * (m * m - len(pairs))  # fixed batch shape: one compilation
        trials = binary([sorted((chosen - {a}) | {b}) for a, b in pairs])
        trial_values = np.asarray(_exact_values(trials, *common, **static), dtype=np.float64)
        k = int(np.argmax(trial_values))
        if not trial_values[k] > value + 1e-12 * max(1.0, abs(value)):
            break
        a, b = pairs[k]
        chosen = (chosen - {a}) | {b}
        value = trial_values[k]
        swaps += 1

    weights = w_final[best]
    indices = np.array(sorted(chosen, key=lambda i: (-weights[i], i)), dtype=np.int64)
    if return_details:
        history = np.asarray(history, dtype=np.float64)
        return GradientResult(
            indices=indices,
            weights=weights,
            relaxation=names[best],
            objective=float(value),
            rounded=dict(zip(names, values.tolist(), strict=True)),
            swaps=swaps,
            history={name: history[i] for i, name in enumerate(names)},
        )
    return indices


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def select(
    per_structure,
    size: int,
    method: str = "msc",
    h=DEFAULT_BANDWIDTH,
    *,
    seed: int = 0,
    reference=None,
    **options,
) -> np.ndarray:
    """Selects ``size`` structures that keep the information of a dataset.

    Args:
        per_structure: list of (n_i, d) descriptor arrays, one per structure (for example
            ``[jaxinfo.descriptors(atoms) for atoms in frames]``).
        size: number of structures to select, 1 <= size <= len(per_structure).
        method: one of ``"msc"``, ``"msc_conditional"``, ``"fps"``, ``"kmeans"``,
            ``"random"``, ``"gradient"`` (see the module docstring).
        h: bandwidth in 1/Angstrom (msc, msc_conditional, fps seed, gradient).
        seed: random seed (kmeans, random, gradient; msc, msc_conditional and fps are
            deterministic and ignore it).
        reference: (m, d) descriptors already held; required by and only used with
            ``"msc_conditional"``.
        **options: passed to the method's function (for example ``steps=`` for gradient,
            ``n_init=`` for kmeans, ``entropies=`` for msc and fps).

    Returns:
        (size,) int64 numpy array of distinct structure indices in selection order.

    Raises:
        ValueError: empty or malformed input, inconsistent descriptor widths, size outside
            [1, n], an unknown method, a missing reference or one of the wrong width.

    Example:
        >>> import numpy as np
        >>> from jaxinfo.selection import select
        >>> rng = np.random.default_rng(0)
        >>> structures = [rng.normal(scale=0.02, size=(8, 4)) for _ in range(5)]
        >>> sorted(select(structures, 3, method="random", seed=1).tolist())
        [0, 1, 4]
    """
    if method not in METHODS:
        raise ValueError(
            f"unknown selection method {method!r}; valid methods: {', '.join(METHODS)}"
        )
    if reference is not None and method != "msc_conditional":
        raise ValueError(f"reference= is only used by method 'msc_conditional', not {method!r}")
    if method == "msc":
        return select_msc(per_structure, size, h, **options)
    if method == "msc_conditional":
        return select_msc_conditional(per_structure, size, reference, h, **options)
    if method == "fps":
        return select_fps(per_structure, size, h, **options)
    if method == "kmeans":
        return select_kmeans(per_structure, size, seed=seed, **options)
    if method == "random":
        return select_random(per_structure, size, seed=seed, **options)
    return select_gradient(per_structure, size, h, seed=seed, **options)
