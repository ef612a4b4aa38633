"""Greedy minimum set coverage: msc and msc conditioned on a reference (the peer's methods)."""

from __future__ import annotations

import numpy as np

from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.kernels import DEFAULT_BLOCK_SIZE
from jaxinfo.selection._data import _check_h, _check_size, _Data, _lks, _prepare
from jaxinfo.selection.summaries import _structure_entropies

__all__ = ["select_msc", "select_msc_conditional"]


def _msc(data: _Data, size, h, entropies, log_cover, block_size) -> np.ndarray:
    """Greedy msc from accumulated log kernel sums ``log_cover`` (None: seed step first)."""
    seed = log_cover is None
    if seed:
        log_cover = np.full(data.x.shape[0], -np.inf)
    available = np.ones(data.n, dtype=bool)
    selected: list[int] = []
    while len(selected) < size:
        if seed and not selected:  # the structure of highest own entropy
            pick = int(np.argmax(entropies))
        else:
            worst = np.minimum.reduceat(log_cover, data.offsets)  # log min_{e in s} A_e
            pick = int(np.argmax(np.where(available, entropies - worst, -np.inf)))
        selected.append(pick)
        available[pick] = False
        if len(selected) < size:
            log_cover = np.logaddexp(log_cover, _lks(data.x, data.parts[pick], h, block_size))
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
    entropies = _structure_entropies(data, h, block_size, entropies)
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
    entropies = _structure_entropies(data, h, block_size, entropies)
    log_cover = None if ref is None else _lks(data.x, ref, h, block_size)
    return _msc(data, size, h, entropies, log_cover, block_size)


def _prepare_reference(reference, data: _Data):
    """(m, d) reference rows in the dtype of ``data.x``, or None for an empty reference.

    A list or tuple of arrays is stacked (its empty arrays dropped); the rows get the checks of
    :func:`_prepare` (2-D, one width, finite), then their width is matched to ``data``.
    """
    if reference is None:
        raise ValueError("msc_conditional needs reference= descriptors (an (m, d) array)")
    if isinstance(reference, (list, tuple)):
        parts = [p for p in map(np.asarray, reference) if p.size > 0]
    else:
        parts = [np.asarray(reference)]
        if parts[0].ndim == 2 and parts[0].shape[0] == 0:
            parts = []
    if not parts:
        return None
    try:
        ref = _prepare(parts).x
    except ValueError as err:
        raise ValueError(f"reference: {err}") from None
    if ref.shape[1] != data.x.shape[1]:
        raise ValueError(
            f"reference width {ref.shape[1]} differs from the descriptor width "
            f"{data.x.shape[1]} of the structures"
        )
    return ref.astype(data.x.dtype)
