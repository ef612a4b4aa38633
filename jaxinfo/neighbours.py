"""Host-side neighbour tables: the k nearest neighbours of every atom, periodic images included.

The table is planned on the host and has fixed shapes, so that the geometry can be recomputed
in JAX from positions and cell and differentiated with respect to both. The table itself is
never differentiated.

Periodic images are explicit: an atom's neighbours include images of itself and of every other
atom, as many as fall inside the cutoff, so one-atom cells and cells much smaller than the
cutoff work. Each lattice direction honours its own ``pbc`` flag.

Two host searches produce the same table:

* :func:`neighbour_table`, one structure at a time with the ``vesin`` cell list (linear in the
  number of atoms): large cells, slabs and wires;
* :func:`stacked_neighbour_tables`, a vectorised numpy search over a stack of small fully
  periodic or fully open structures at once: every pair of atoms with the few lattice
  translations that can bring it within the cutoff. Datasets of thousands of small cells
  spend microseconds per structure here instead of a library call each.
"""

from __future__ import annotations

import dataclasses
import typing

import jax
import jax.numpy as jnp
import numpy as np
import vesin

from jaxinfo._buckets import geometric_bucket
from jaxinfo._validation import check_cutoff, check_geometry, check_k

__all__ = [
    "MAX_STACKED_CANDIDATES",
    "NeighbourList",
    "NeighbourListFns",
    "NeighbourTable",
    "allocate_lists",
    "neighbour_list",
    "neighbour_table",
    "pad_table",
    "stacked_image_counts",
    "stacked_neighbour_tables",
    "wrap_positions",
]

#: :func:`stacked_neighbour_tables` examines n_atoms x translations candidates per atom; above
#: this many a cell list (:func:`neighbour_table`) is cheaper.
MAX_STACKED_CANDIDATES = 1024
#: Relative margin on the image ranges, so round-off never drops an image at the cutoff.
_IMAGE_MARGIN = 1e-9


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


def _lattices(cells, periodic):
    """Cells of periodic structures, the identity for open ones (never inverted otherwise)."""
    return np.where(np.asarray(periodic, dtype=bool)[:, None, None], cells, np.eye(3))


def stacked_image_counts(cells, periodic, cutoff: float) -> np.ndarray:
    """Lattice translations per axis that one pair of wrapped atoms needs, for each structure.

    For atoms wrapped into the cell, the fractional difference along axis a lies in (-1, 1),
    and an image is within ``cutoff`` only if ``|delta_a + n_a| * height_a < cutoff``, with
    ``height_a`` the spacing of the lattice planes normal to axis a: at most
    ``floor(2 cutoff / height_a) + 1`` consecutive integers n_a.

    Args:
        cells: (S, 3, 3) lattice vectors as rows, Angstrom.
        periodic: (S,) bool, True for fully periodic structures, False for open ones.
        cutoff: cutoff radius in Angstrom.

    Returns:
        (S, 3) int array, all ones for open structures.
    """
    inverse = np.linalg.inv(_lattices(cells, periodic))
    reach = cutoff * np.linalg.norm(inverse, axis=1)  # cutoff / plane spacing, per axis
    counts = np.floor(2.0 * reach * (1.0 + _IMAGE_MARGIN)).astype(np.int64) + 1
    return np.where(np.asarray(periodic, dtype=bool)[:, None], counts, 1)


def stacked_neighbour_tables(
    positions,
    counts,
    cells,
    periodic,
    k: int,
    cutoff: float,
    *,
    centres=None,
    candidates=None,
    names=None,
):
    """Neighbour tables of a stack of small structures at once (vectorised brute force).

    Every structure is either fully periodic or fully open. Atoms are wrapped into the cell;
    for each pair of atoms only the lattice translations that can bring it within the cutoff
    are examined (see :func:`stacked_image_counts`), so the cost is
    ``S * n_atoms^2 * prod(image counts)``: meant for cells of up to a few hundred atoms, where
    it replaces one cell-list call per structure. Gives the same tables as
    :func:`neighbour_table` (up to the order of exactly tied neighbours).

    Args:
        positions: (S, n, 3) Cartesian positions, Angstrom; rows beyond ``counts`` are ignored.
        counts: (S,) number of atoms of each structure (0 for an unused stack slot).
        cells: (S, 3, 3) lattice vectors as rows (ignored for open structures).
        periodic: (S,) bool, True for fully periodic, False for fully open structures.
        k: neighbour slots per atom (>= 1).
        cutoff: cutoff radius in Angstrom (> 0).
        centres: optional (S, n) bool; rows of atoms not selected are left empty.
        candidates: optional (S, n) bool; only these atoms may appear as neighbours.
        names: optional labels of the structures for error messages (default: stack position).

    Returns:
        ``(positions, table)``: (S, n, 3) positions wrapped into the cell and centred on each
        structure's centroid (float64; the table refers to these), and a
        :class:`NeighbourTable` of shapes (S, n, k), (S, n, k, 3), (S, n, k).

    Raises:
        ValueError: two atoms (or an atom and a periodic image) closer than 1e-8 Angstrom.
    """
    k, cutoff = check_k(k), check_cutoff(cutoff)
    positions = np.asarray(positions, dtype=np.float64)
    n_structures, n_atoms, _ = positions.shape
    counts = np.asarray(counts)
    periodic = np.asarray(periodic, dtype=bool)
    lattice = _lattices(np.asarray(cells, dtype=np.float64), periodic)
    inverse = np.linalg.inv(lattice)
    real = np.arange(n_atoms)[None, :] < counts[:, None]  # (S, n)

    fractional = positions @ inverse
    jumps = np.where(periodic[:, None, None] & real[..., None], np.floor(fractional), 0.0)
    wrapped = positions - jumps @ lattice
    fractional -= jumps

    image_counts = stacked_image_counts(lattice, periodic, cutoff).max(axis=0)
    offsets = np.stack(
        np.meshgrid(*(np.arange(c) for c in image_counts), indexing="ij"), axis=-1
    ).reshape(-1, 3)  # (M, 3)
    n_images = offsets.shape[0]
    reach = cutoff * (1.0 + _IMAGE_MARGIN) * np.linalg.norm(inverse, axis=1)  # (S, 3)
    # Arrays are (S, i, xyz, j) from here on, so that numpy's inner loops run over atoms j.
    # Smallest translation that can bring j within reach of i, per axis.
    lowest = (fractional - reach[:, None, :])[..., None] - fractional.transpose(0, 2, 1)[:, None]
    np.ceil(lowest, out=lowest)
    lowest *= periodic[:, None, None, None]
    # Candidate (i, m, j): positions[j] + (lowest_ij + offsets_m) @ cell - positions[i].
    base = lattice.transpose(0, 2, 1)[:, None] @ lowest
    base += wrapped.transpose(0, 2, 1)[:, None]
    base -= wrapped[..., None]
    translations = offsets @ lattice  # (S, M, 3)
    squared = translations[:, None] @ base  # (S, i, M, j)
    squared *= 2.0
    squared += np.einsum("sicj,sicj->sij", base, base)[:, :, None, :]
    squared += np.einsum("smc,smc->sm", translations, translations)[:, None, :, None]
    np.maximum(squared, 0.0, out=squared)

    usable = real[:, :, None] & real[:, None, :]
    if centres is not None:
        usable &= np.asarray(centres, dtype=bool)[:, :, None]
    if candidates is not None:
        usable &= np.asarray(candidates, dtype=bool)[:, None, :]
    keep = usable[:, :, None, :] & (squared < cutoff * cutoff)
    keep &= (periodic[:, None] | ~offsets.any(axis=1))[:, None, :, None]
    diagonal = np.arange(n_atoms)
    own_shift = lowest[:, diagonal, :, diagonal].transpose(1, 0, 2)[:, :, None, :] + offsets
    keep[:, diagonal, :, diagonal] &= own_shift.any(axis=-1).transpose(1, 0, 2)

    # Select the k nearest candidates of each row with one integer partition: the candidate
    # number replaces the lowest mantissa bits of the (non-negative) float64 squared distance,
    # whose bit pattern orders like the distance (ties closer than ~1e-13 relative break
    # arbitrarily, as in any search).
    n_candidates = n_images * n_atoms
    bits = max(n_candidates - 1, 1).bit_length()
    number = np.arange(n_candidates, dtype=np.int64).reshape(n_images, n_atoms)
    keys = (squared.view(np.int64) >> bits << bits) | number
    empty = np.iinfo(np.int64).max
    keys = np.where(keep, keys, empty).reshape(n_structures * n_atoms, n_candidates)
    slots = min(k, n_candidates)
    if slots < n_candidates:
        keys = np.partition(keys, slots - 1, axis=1)[:, :slots]
    keys = np.sort(keys, axis=1)
    mask = keys != empty
    number = np.where(mask, keys & ((1 << bits) - 1), 0)
    image, neighbour = number // n_atoms, number % n_atoms

    rows = np.arange(n_structures * n_atoms)[:, None]
    flat_lowest = lowest.reshape(-1)
    first = (rows * 3) * n_atoms + neighbour  # element (s, i, 0, j) of lowest
    shift = np.stack([flat_lowest[first + axis * n_atoms] for axis in range(3)], axis=-1)
    shift += offsets[image]
    index = np.where(mask, neighbour, 0).astype(np.int32)
    shift = np.where(mask[..., None], shift, 0).astype(np.int32)

    _check_nearest_apart(wrapped, lattice, index, shift, mask, n_atoms, names)
    table = NeighbourTable(
        index=_fill_slots(index.reshape(n_structures, n_atoms, slots), k),
        shift=_fill_slots(shift.reshape(n_structures, n_atoms, slots, 3), k),
        mask=_fill_slots(mask.reshape(n_structures, n_atoms, slots), k),
    )
    centroid = np.sum(np.where(real[..., None], wrapped, 0.0), axis=1)
    centroid /= np.maximum(counts, 1)[:, None]
    return np.where(real[..., None], wrapped - centroid[:, None, :], 0.0), table


def _fill_slots(array, k):
    """Pads the slot axis (axis 2) with zeros/False up to k slots."""
    missing = k - array.shape[2]
    if missing == 0:
        return array
    widths = [(0, 0)] * array.ndim
    widths[2] = (0, missing)
    return np.pad(array, widths)


def _check_nearest_apart(wrapped, lattice, index, shift, mask, n_atoms, names):
    """Raises if an atom's nearest neighbour (slot 0) is closer than 1e-8 Angstrom, recomputing
    that distance directly (the expanded squared distances are not exact at zero)."""
    rows = np.nonzero(mask[:, 0])[0]
    structure, centre = rows // n_atoms, rows % n_atoms
    vectors = (
        wrapped[structure, index[rows, 0]]
        + np.einsum("rc,rcd->rd", shift[rows, 0].astype(np.float64), lattice[structure])
        - wrapped[structure, centre]
    )
    close = np.nonzero(np.linalg.norm(vectors, axis=1) < 1e-8)[0]
    if close.size:
        row = rows[close[0]]
        s, a, b = row // n_atoms, row % n_atoms, int(index[row, 0])
        label = s if names is None else names[s]
        what = "a periodic image of itself" if a == b else f"atom {b}"
        raise ValueError(
            f"structure {label}: two atoms at the same position: atom {a} coincides with {what}"
        )


# ------------------------------------------------------------------------------------------
# Moving neighbour lists: host allocation, jit update (the jax-md pattern)
# ------------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NeighbourList:
    """A k-nearest table kept current under jit from a fixed-capacity candidate list.

    Attributes:
        table: :class:`NeighbourTable` of the k nearest neighbours within the cutoff, sorted by
            distance at the positions of the last update: (n_atoms, k) slots.
        candidates: :class:`NeighbourTable` of every neighbour within ``cutoff + skin`` at
            allocation: (n_atoms, capacity) slots. A pair potential with cutoff <= the list's
            cutoff can use it as its table directly.
        positions: (n_atoms, 3) positions at allocation, Å.
        cell: (3, 3) cell at allocation, Å (unit rows along non-periodic axes).
        pbc: (3,) bool periodicity.
        overflow: bool scalar, sticky: True when the candidate capacity was too small at
            allocation or when atoms (or the cell) moved far enough since then that a
            neighbour may be missing; the host must then :meth:`~NeighbourListFns.allocate`
            again (and redo the steps since the last good state).
    """

    table: NeighbourTable
    candidates: NeighbourTable
    positions: jax.Array
    cell: jax.Array
    pbc: jax.Array
    overflow: jax.Array


class NeighbourListFns(typing.NamedTuple):
    """``allocate(positions, cell, pbc, *, like=None) -> NeighbourList`` (host; ``like``: an
    earlier list whose candidate capacity is kept when it suffices, so shapes do not change),
    ``update(positions, cell, neighbours) -> NeighbourList`` (pure, jit-able) and
    ``stale(positions, cell, neighbours) -> bool`` (pure: the overflow ``update`` would set,
    without recomputing the table)."""

    allocate: typing.Callable
    update: typing.Callable
    stale: typing.Callable


def neighbour_list(
    k: int,
    cutoff: float,
    *,
    skin: float = 0.5,
    capacity: int | None = None,
    capacity_multiplier: float = 1.25,
) -> NeighbourListFns:
    """Neighbour-list factory in the jax-md manner: static plan on the host, update under jit.

    ``allocate`` finds every neighbour within ``cutoff + skin`` (periodic images explicit,
    as :func:`neighbour_table`) and stores it in ``capacity`` candidate slots per atom.
    ``update`` recomputes the distances of all candidates from the current positions and cell
    and keeps the k nearest within ``cutoff`` (``jax.lax.top_k``), so the table equals a fresh
    host build as long as no atom has moved more than ``skin / 2`` since allocation (affine
    cell changes are accounted for); beyond that, or when the capacity was too small,
    ``overflow`` is set and the caller re-allocates.

    Args:
        k: slots of the k-nearest table.
        cutoff: radius of the k-nearest table, Å.
        skin: extra candidate radius, Å (>= 0).
        capacity: candidate slots per atom; default: ``capacity_multiplier`` times the
            largest count found at allocation (at least k), rounded up to one of four sizes
            per doubling, so that structures with similar counts share compiled code.
        capacity_multiplier: head room of the default capacity (>= 1).

    Returns:
        :class:`NeighbourListFns` ``(allocate, update)``.

    Example:
        >>> import jax
        >>> from ase.build import bulk
        >>> atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        >>> fns = neighbour_list(k=8, cutoff=4.0)
        >>> nbrs = fns.allocate(atoms.positions, atoms.cell.array, atoms.pbc)
        >>> nbrs = jax.jit(fns.update)(atoms.positions + 0.1, atoms.cell.array, nbrs)
        >>> nbrs.table.index.shape, bool(nbrs.overflow)
        ((32, 8), False)
    """
    k, cutoff = check_k(k), check_cutoff(cutoff)
    skin = float(skin)
    if not (np.isfinite(skin) and skin >= 0):
        raise ValueError(f"skin must be a finite number >= 0 (Å), got {skin!r}")
    if capacity is not None:
        capacity = check_k(capacity)
    radius = cutoff + skin

    def allocate(positions, cell, pbc, *, like: NeighbourList | None = None) -> NeighbourList:
        positions, cell_, pbc_ = check_geometry(positions, cell, pbc)
        i, *_ = _pair_list(positions, cell_, pbc_, radius)
        needed = int(np.bincount(i, minlength=positions.shape[0]).max(initial=0))
        headroom = int(np.ceil(capacity_multiplier * needed))
        slots = capacity or geometric_bucket(headroom, 4, minimum=k)  # few shapes, few compiles
        if capacity is None and like is not None and needed <= like.candidates.k:
            slots = like.candidates.k  # same shapes as before: compiled steps are reused
        candidates = neighbour_table(positions, cell_, pbc_, slots, radius)
        return NeighbourList(
            table=neighbour_table(positions, cell_, pbc_, k, cutoff),
            candidates=candidates,
            positions=positions,
            cell=_lattice(cell_, pbc_),
            pbc=pbc_,
            overflow=np.asarray(needed > slots),
        )

    def update(positions, cell, neighbours: NeighbourList) -> NeighbourList:
        cand = neighbours.candidates
        # The table is never differentiated: geometry is recomputed from it downstream.
        positions = jax.lax.stop_gradient(jnp.asarray(positions))
        cell = jax.lax.stop_gradient(jnp.asarray(cell, positions.dtype))
        shift = jnp.asarray(cand.shift).astype(positions.dtype)
        vectors = positions[cand.index] + shift @ cell - positions[:, None, :]
        squared = jnp.where(cand.mask, jnp.sum(vectors * vectors, axis=-1), jnp.inf)
        slots = min(k, squared.shape[1])
        negative, order = jax.lax.top_k(-squared, slots)
        mask = -negative < cutoff * cutoff
        index = jnp.where(mask, jnp.take_along_axis(cand.index, order, axis=1), 0)
        shifts = jnp.take_along_axis(cand.shift, order[..., None], axis=1)
        shifts = jnp.where(mask[..., None], shifts, 0)
        if slots < k:
            index, shifts, mask = (
                jnp.pad(a, [(0, 0), (0, k - slots)] + [(0, 0)] * (a.ndim - 2))
                for a in (index, shifts, mask)
            )
        stale = moved_too_far(positions, cell, neighbours)
        table = NeighbourTable(index=index.astype(jnp.int32), shift=shifts, mask=mask)
        return dataclasses.replace(
            neighbours, table=table, overflow=jnp.logical_or(neighbours.overflow, stale)
        )

    def moved_too_far(positions, cell, neighbours: NeighbourList):
        # Pair distances change by at most twice the largest displacement beyond the affine
        # motion of the cell, plus the strain times the candidate radius (Frobenius norm: an
        # upper bound of the spectral norm that needs no SVD).
        built_cell = jnp.asarray(neighbours.cell, positions.dtype)
        cell = _lattice(jnp.asarray(cell, positions.dtype), neighbours.pbc)
        affine = jnp.linalg.inv(built_cell) @ cell
        moved = positions - jnp.asarray(neighbours.positions, positions.dtype) @ affine
        largest = jnp.sqrt(jnp.max(jnp.sum(moved * moved, axis=-1)))
        strain = jnp.sqrt(jnp.sum((affine - jnp.eye(3, dtype=positions.dtype)) ** 2))  # >= 2-norm
        return 2.0 * largest + strain * radius > skin

    def stale(positions, cell, neighbours: NeighbourList):
        positions = jax.lax.stop_gradient(jnp.asarray(positions))
        return neighbours.overflow | moved_too_far(positions, cell, neighbours)

    return NeighbourListFns(allocate=allocate, update=update, stale=stale)


def allocate_lists(fns, positions, cell, pbc, like=None) -> tuple:
    """Allocates a tuple of lists on the host, one per :class:`NeighbourListFns` in ``fns``
    (None gives None), keeping the capacities of the matching lists of ``like``."""
    like = like or (None,) * len(fns)
    return tuple(
        None if f is None else f.allocate(positions, cell, pbc, like=old)
        for f, old in zip(fns, like, strict=True)
    )


def _lattice(cell, pbc):
    """The cell with the rows of non-periodic axes replaced by unit vectors (invertible)."""
    xp = np if isinstance(cell, np.ndarray) else jnp
    return xp.where(xp.asarray(pbc)[:, None], cell, xp.eye(3, dtype=cell.dtype))
