"""Input checks shared by the public functions.

Every check raises a :class:`ValueError` whose message names the problem, so that bad input
never reaches XLA and never surfaces as a traceback from compiled code.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_k(k) -> int:
    """Returns ``k`` as an int, or raises if it is not an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1 (number of neighbours), got {k}")
    return int(k)


def check_cutoff(cutoff) -> float:
    """Returns ``cutoff`` as a float, or raises if it is not finite and > 0."""
    try:
        value = float(cutoff)
    except (TypeError, ValueError):
        raise ValueError(f"cutoff must be a positive number in Angstrom, got {cutoff!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"cutoff must be a finite number > 0 (Angstrom), got {cutoff!r}")
    return value


def check_bandwidth(h) -> np.ndarray:
    """Returns ``h`` as a float64 array of ndim 0 or 1; raises unless every value is finite, > 0."""
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"bandwidth h must be a scalar or a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("bandwidth h is an empty array")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"bandwidth h must be finite and > 0 (1/Angstrom), got {h!r}")
    return arr


def check_geometry(positions, cell, pbc, *, min_distance: float = 1e-8):
    """Validates one structure's arrays and returns them as float64/bool numpy arrays.

    Args:
        positions: (n_atoms, 3) Cartesian positions in Angstrom.
        cell: (3, 3) lattice vectors as rows, in Angstrom.
        pbc: three booleans, periodicity along each lattice vector.
        min_distance: two atoms (or an atom and a periodic image) closer than this, in Angstrom,
            are reported as coincident.

    Returns:
        ``(positions, cell, pbc)`` as numpy arrays of shapes (n, 3), (3, 3) and (3,).
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (n_atoms, 3), got {positions.shape}")
    if positions.shape[0] == 0:
        raise ValueError("empty structure: it has no atoms")
    if not np.all(np.isfinite(positions)):
        bad = np.unique(np.nonzero(~np.isfinite(positions))[0])
        raise ValueError(f"positions contain NaN or inf (atoms {bad[:10].tolist()})")
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape != (3, 3):
        raise ValueError(f"cell must have shape (3, 3), got {cell.shape}")
    if not np.all(np.isfinite(cell)):
        raise ValueError("cell contains NaN or inf")
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if pbc.any():
        periodic_vectors = cell[pbc]
        # The periodic lattice vectors must span a non-degenerate lattice of their dimension.
        gram = periodic_vectors @ periodic_vectors.T
        scale = max(float(np.max(np.abs(gram))), 1e-300)
        if abs(np.linalg.det(gram)) <= 1e-12 * scale ** len(periodic_vectors):
            axes = np.nonzero(pbc)[0].tolist()
            raise ValueError(
                f"singular cell: the lattice vectors along periodic axes {axes} are zero or "
                "linearly dependent (zero volume); give a proper cell or set pbc=False"
            )
    return positions, cell, pbc


def check_positive(name, value, *, allow_zero=False):
    """Returns ``value`` as a float; raises unless it is finite and > 0 (>= 0 if allowed)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    bad = value < 0 if allow_zero else value <= 0
    if not np.isfinite(value) or bad:
        relation = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {relation}, got {value!r}")
    return value


def check_count(name, value, minimum=1):
    """Returns ``value`` as an int; raises unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
