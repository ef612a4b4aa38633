"""Validated selection input: stacked environments, size, bandwidth and index checks."""

from __future__ import annotations

import operator
from typing import NamedTuple

import jax
import numpy as np

from jaxinfo._validation import check_bandwidth
from jaxinfo.kernels import log_kernel_sums


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
