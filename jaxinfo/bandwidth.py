"""Bandwidth rules h(V) from the atomic volume, for comparing systems of different density.

Both are fits (Schwalbe-Koda et al., Nat. Commun. 2025) of the bandwidth that makes entropies
of systems at different densities comparable; V is in Angstrom^3 per atom, h in 1/Angstrom.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BANDWIDTH_METHODS", "atomic_volume", "bandwidth_from_volume"]

BANDWIDTH_METHODS = ("gaussian", "cutoff")


def bandwidth_from_volume(volume, method: str = "gaussian"):
    """Bandwidth h (1/Angstrom) for an atomic volume V (Angstrom^3/atom).

    * ``"gaussian"``: h = 0.0897141 exp(-(V / 10.896)^2 / 2) + 0.0119417
    * ``"cutoff"``:   h = 0.086164 w((ln V)^2; rc = 11.61172) + 0.016, with
      w(r; rc) = (1 - (r/rc)^2)^2 for r < rc and 0 beyond.

    Args:
        volume: atomic volume(s), > 0; scalar or array.
        method: ``"gaussian"`` or ``"cutoff"``.

    Returns:
        float for a scalar volume, else an array of the same shape.

    Example:
        >>> round(bandwidth_from_volume(11.76), 4)
        0.0621
    """
    v = np.asarray(volume, dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"atomic volume must be finite and > 0 (Angstrom^3/atom), got {volume!r}")
    if method == "gaussian":
        h = 0.0897141 * np.exp(-0.5 * (v / 10.896) ** 2) + 0.0119417
    elif method == "cutoff":
        r = np.log(v) ** 2
        w = np.where(r < 11.61172, (1.0 - (r / 11.61172) ** 2) ** 2, 0.0)
        h = 0.086164 * w + 0.016
    else:
        raise ValueError(f"unknown bandwidth method {method!r}; choose one of {BANDWIDTH_METHODS}")
    return float(h) if h.ndim == 0 else h


def atomic_volume(atoms) -> float:
    """Volume per atom (Angstrom^3) of a fully periodic ase.Atoms.

    Raises:
        ValueError: if the structure is not periodic along all three axes, has no atoms, or
            its cell has zero volume.
    """
    if len(atoms) == 0:
        raise ValueError("empty structure: it has no atoms")
    if not np.all(atoms.pbc):
        raise ValueError("atomic volume needs a structure periodic along all three axes")
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    if volume <= 0:
        raise ValueError("singular cell: zero volume")
    return volume / len(atoms)
