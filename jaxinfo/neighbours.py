"""Host-side neighbour tables: the k nearest neighbours of every atom, periodic images included.

The table is planned on the host (numpy + the ``vesin`` cell-list library, linear in the number
of atoms) and has fixed shapes, so that the geometry can be recomputed in JAX from positions and
cell and differentiated with respect to both. The table itself is never differentiated.

Periodic images are explicit: an atom's neighbours include images of itself and of every other
atom, as many as fall inside the cutoff, so one-atom cells and cells much smaller than the
cutoff work. Each lattice direction honours its own ``pbc`` flag.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import vesin

from jaxinfo._validation import check_cutoff, check_geometry, check_k

__all__ = ["NeighbourTable", "neighbour_table", "pad_table", "wrap_positions"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NeighbourTable:
    """Fixed-shape table of the k nearest neighbours of each atom.

    Attributes:
        index: (n_atoms, k) int32, index of the neighbouring atom (0 in empty slots).
        shift: (n_atoms, k, 3) int32, lattice translation of the neighbour's image: the
            neighbour vector is ``positions[index] + shift @ cell - positions[i]``.
        mask: (n_atoms, k) bool, True where the slot holds a neighbour within the cutoff.
            Slots are ordered by ascending distance at the time the table was built.
    """

    index: np.ndarray
    shift: np.ndarray
    mask: np.ndarray

    @property
    def n_atoms(self) -> int:
        return self.index.shape[-2]

    @property
    def k(self) -> int:
        return self.index.shape[-1]


def _pair_list(positions, cell, pbc, cutoff):
    """All (i, j, shift, distance) pairs closer than the cutoff, except i-i at zero shift."""
    if not pbc.any():
        # vesin wants a box even when nothing is periodic; it does not use it then.
        cell = np.zeros((3, 3))
    calculator = vesin.NeighborList(cutoff=cutoff, full_list=True)
    i, j, shift, distance = calculator.compute(positions, cell, pbc.tolist(), "ijSd")
    return i, j, shift, distance


def neighbour_table(positions, cell, pbc, k: int, cutoff: float, *, centres=None, candidates=None):
    """Builds the table of the k nearest neighbours (within ``cutoff``) of every atom.

    Args:
        positions: (n_atoms, 3) Cartesian positions, Angstrom. Atoms may lie outside the cell.
        cell: (3, 3) lattice vectors as rows, Angstrom; ignored along non-periodic axes.
        pbc: bool or three bools, periodicity along each lattice vector.
        k: number of neighbour slots per atom (>= 1).
        cutoff: neighbours at distance >= cutoff are left out (their weight is zero anyway).
        centres: optional (n_atoms,) bool; rows of atoms not selected are left empty.
        candidates: optional (n_atoms,) bool; only these atoms may appear as neighbours.

    Returns:
        A :class:`NeighbourTable` with ``n_atoms`` rows and ``k`` slots, sorted by distance.

    Raises:
        ValueError: empty structure, NaN/inf positions, singular periodic cell, k < 1,
            cutoff <= 0, or two atoms at the same position (including periodic images).
    """
    k = check_k(k)
    cutoff = check_cutoff(cutoff)
    positions, cell, pbc = check_geometry(positions, cell, pbc)
    n_atoms = positions.shape[0]

    i, j, shift, distance = _pair_list(positions, cell, pbc, cutoff)
    coincident = distance < 1e-8
    if np.any(coincident):
        a, b = int(i[coincident][0]), int(j[coincident][0])
        what = "a periodic image of itself" if a == b else f"atom {b}"
        raise ValueError(f"two atoms at the same position: atom {a} coincides with {what}")
    if centres is not None or candidates is not None:
        keep = np.ones(i.shape, dtype=bool)
        if centres is not None:
            keep &= np.asarray(centres, dtype=bool)[i]
        if candidates is not None:
            keep &= np.asarray(candidates, dtype=bool)[j]
        i, j, shift, distance = i[keep], j[keep], shift[keep], distance[keep]

    # Group pairs by centre, nearest first; the rank inside each group is the slot. The key
    # i * 2rc + d orders by centre, then distance (d < rc); ties are broken arbitrarily.
    order = np.argsort(i * (2.0 * cutoff) + distance)
    i = i[order]
    first_of_group = np.searchsorted(i, np.arange(n_atoms))
    rank = np.arange(i.size) - first_of_group[i]
    in_table = np.nonzero(rank < k)[0]
    i, rank, order = i[in_table], rank[in_table], order[in_table]
    j, shift = j[order], shift[order]

    index = np.zeros((n_atoms, k), dtype=np.int32)
    shifts = np.zeros((n_atoms, k, 3), dtype=np.int32)
    mask = np.zeros((n_atoms, k), dtype=bool)
    index[i, rank] = j
    shifts[i, rank] = shift
    mask[i, rank] = True
    return NeighbourTable(index=index, shift=shifts, mask=mask)


def wrap_positions(positions, cell, pbc, table: NeighbourTable):
    """Moves atoms into the cell (and the structure to its centroid), keeping the geometry.

    Descriptors depend only on neighbour vectors, so translating atoms by lattice vectors
    (compensated in the table's shifts) and the whole structure rigidly changes nothing; it
    keeps coordinates small, so that float32 neighbour vectors do not lose digits to
    unwrapped MD coordinates far from the origin. Host-side, float64.

    Args:
        positions: (n_atoms, 3) positions in Angstrom.
        cell: (3, 3) lattice vectors as rows.
        pbc: three bools.
        table: the structure's neighbour table.

    Returns:
        ``(positions, table)``: wrapped and centred positions, and the table with shifts
        adjusted so that every neighbour vector is unchanged.
    """
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if pbc.any():
        if pbc.all():
            fractional = positions @ np.linalg.inv(cell)
        else:
            fractional = np.zeros_like(positions)
            fractional[:, pbc] = np.linalg.lstsq(cell[pbc].T, positions.T, rcond=None)[0].T
        jumps = np.zeros((positions.shape[0], 3), dtype=np.int64)
        jumps[:, pbc] = np.floor(fractional[:, pbc])
        if jumps.any():
            shift = table.shift + jumps[table.index] - jumps[:, None, :]
            shift = np.where(table.mask[..., None], shift, 0).astype(np.int32)
            positions = positions - jumps @ cell
            table = NeighbourTable(index=table.index, shift=shift, mask=table.mask)
    return positions - positions.mean(axis=0), table


def pad_table(table: NeighbourTable, n_atoms: int) -> NeighbourTable:
    """Pads a table with empty rows up to ``n_atoms`` rows (padded rows point at atom 0)."""
    extra = n_atoms - table.n_atoms
    if extra < 0:
        raise ValueError(f"cannot pad a table of {table.n_atoms} rows down to {n_atoms}")
    return NeighbourTable(
        index=np.pad(table.index, ((0, extra), (0, 0))),
        shift=np.pad(table.shift, ((0, extra), (0, 0), (0, 0))),
        mask=np.pad(table.mask, ((0, extra), (0, 0))),
    )
