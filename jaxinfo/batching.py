"""Descriptors of whole datasets: host planning into a few padded size buckets.

Structures are grouped by atom count into buckets (8, 12, 16, 24, 32, 48, ...: powers of two
and 1.5 times powers of two, so padding wastes at most a third) and stacked a fixed number per
call, so a dataset of thousands of structures of varying size compiles a handful of times, not
once per structure. Padded atoms have empty neighbour rows and are dropped from the output.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxinfo._buckets import geometric_bucket
from jaxinfo._validation import check_cutoff, check_geometry, check_k
from jaxinfo.descriptor import (
    DEFAULT_CUTOFF,
    DEFAULT_K,
    descriptor_width,
    environment_descriptors,
    neighbour_vectors,
)
from jaxinfo.neighbours import (
    MAX_STACKED_CANDIDATES,
    NeighbourTable,
    neighbour_table,
    stacked_image_counts,
    stacked_neighbour_tables,
    wrap_positions,
)

__all__ = ["ENVIRONMENTS_PER_CALL", "bucket_size", "descriptors", "species_descriptors"]

#: Target number of environments (structures x padded atoms) evaluated per compiled call.
ENVIRONMENTS_PER_CALL = 2048
_SMALLEST_BUCKET = 8
#: Above twice this many atoms, buckets are multiples of it (large cells waste < 1024 rows).
_LARGE_BUCKET_STEP = 1024


def bucket_size(n: int) -> int:
    """Smallest bucket >= n: 8, 12, 16, 24, 32, 48, ... (2^a and 3 * 2^(a-1)) up to 2048,
    multiples of 1024 beyond."""
    return geometric_bucket(n, 2, minimum=_SMALLEST_BUCKET, max_step=_LARGE_BUCKET_STEP)


def _structures_per_call(n_bucket: int, n_structures: int) -> int:
    """Stack size for a bucket: fills ENVIRONMENTS_PER_CALL, rounded to a power of two."""
    full = max(1, ENVIRONMENTS_PER_CALL // n_bucket)
    full = 1 << (full.bit_length() - 1)
    needed = 1 << (max(n_structures, 1) - 1).bit_length()
    return min(full, needed)


def _as_structure_list(structures) -> list:
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover - ase is a core dependency
        Atoms = ()
    if isinstance(structures, Atoms):
        return [structures]
    if isinstance(structures, Iterable):
        items = list(structures)
        for index, item in enumerate(items):
            if not isinstance(item, Atoms):
                raise ValueError(
                    f"structure {index} is a {type(item).__name__}, expected ase.Atoms"
                )
        return items
    raise ValueError(f"expected an ase.Atoms or a list of them, got {type(structures).__name__}")


def _float_dtype(dtype):
    if dtype is None:
        return jnp.zeros(()).dtype  # float32, or float64 when JAX x64 is enabled
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 requested but JAX x64 is disabled (set JAX_ENABLE_X64=1)")
    return dtype


@functools.partial(jax.jit, static_argnames=("cutoff",))
def _stacked_descriptors(positions, cells, table: NeighbourTable, cutoff: float):
    """(B, n, 3), (B, 3, 3), table of (B, n, k) -> (B, n, 2k - 1)."""
    vectors = jax.vmap(neighbour_vectors)(positions, cells, table)
    batch, n_atoms, k, _ = vectors.shape
    rows = environment_descriptors(
        vectors.reshape(batch * n_atoms, k, 3), table.mask.reshape(batch * n_atoms, k), cutoff
    )
    return rows.reshape(batch, n_atoms, -1)


def _full_requests(atoms):
    """One table per structure: all atoms are centres and candidates."""
    return [(None, None)]


def _stack_geometry(items, batch, stack, n_bucket):
    """Zero-padded (stack, n_bucket, 3) positions, cells, pbc and atom counts of a stack.

    Validates every structure at once; the first bad one is reported with its input index.
    """
    positions = np.zeros((stack, n_bucket, 3))
    cells = np.tile(np.eye(3), (stack, 1, 1))
    pbc = np.zeros((stack, 3), dtype=bool)
    counts = np.zeros(stack, dtype=np.int64)
    for slot, (index, *_) in enumerate(batch):
        atoms = items[index]
        n_atoms = len(atoms)
        positions[slot, :n_atoms] = atoms.positions
        cells[slot] = atoms.cell.array
        pbc[slot] = atoms.pbc
        counts[slot] = n_atoms
    used = len(batch)
    suspect = (counts[:used] == 0) | ~np.isfinite(positions[:used]).all(axis=(1, 2))
    suspect |= ~np.isfinite(cells[:used]).all(axis=(1, 2))
    periodic = pbc[:used].all(axis=1) & ~suspect
    gram = cells[:used] @ cells[:used].transpose(0, 2, 1)
    scale = np.max(np.abs(gram), axis=(1, 2))
    suspect |= periodic & (np.abs(np.linalg.det(gram)) <= 1e-12 * scale**3)
    for slot in np.nonzero(suspect)[0]:
        index = batch[slot][0]
        atoms = items[index]
        try:
            check_geometry(atoms.positions, atoms.cell.array, atoms.pbc)
        except ValueError as error:
            raise ValueError(f"structure {index}: {error}") from None
    return positions, cells, pbc, counts


def _selection_masks(batch, stack, n_bucket, which):
    """(stack, n_bucket) bool of the requests' centres (which=2) or candidates (which=3)."""
    masks = np.ones((stack, n_bucket), dtype=bool)
    for slot, request in enumerate(batch):
        if request[which] is not None:
            masks[slot, : len(request[which])] = request[which]
    return masks


def _stacked_search_slots(pbc, cells, n_bucket, used, cutoff):
    """Stack slots whose tables come from the vectorised search (small, fully periodic or
    fully open structures), keeping the stack's translations within the candidate budget."""
    periodic = pbc.all(axis=1)
    images = stacked_image_counts(cells, periodic, cutoff)
    chosen = (periodic | ~pbc.any(axis=1)) & (np.arange(len(pbc)) < used)
    chosen &= n_bucket * images.prod(axis=1) <= MAX_STACKED_CANDIDATES
    while chosen.any() and n_bucket * images[chosen].max(axis=0).prod() > MAX_STACKED_CANDIDATES:
        chosen[np.argmax(np.where(chosen, images.prod(axis=1), 0))] = False
    return chosen


def _stack_tables(items, batch, stack, n_bucket, k, cutoff):
    """Wrapped, centred positions, cells and the neighbour table of a whole stack (host)."""
    positions, cells, pbc, counts = _stack_geometry(items, batch, stack, n_bucket)
    centres = _selection_masks(batch, stack, n_bucket, 2)
    candidates = _selection_masks(batch, stack, n_bucket, 3)
    index = np.zeros((stack, n_bucket, k), dtype=np.int32)
    shift = np.zeros((stack, n_bucket, k, 3), dtype=np.int32)
    mask = np.zeros((stack, n_bucket, k), dtype=bool)
    stacked = _stacked_search_slots(pbc, cells, n_bucket, len(batch), cutoff)
    if stacked.any():
        rows = np.nonzero(stacked)[0]
        positions[rows], table = stacked_neighbour_tables(
            positions[rows],
            counts[rows],
            cells[rows],
            pbc[rows].all(axis=1),
            k,
            cutoff,
            centres=centres[rows],
            candidates=candidates[rows],
            names=[batch[row][0] for row in rows],
        )
        index[rows], shift[rows], mask[rows] = table.index, table.shift, table.mask
    for slot in np.nonzero(~stacked[: len(batch)])[0]:
        structure = batch[slot][0]
        atoms, n_atoms = items[structure], counts[slot]
        try:
            table = neighbour_table(
                atoms.positions,
                atoms.cell.array,
                atoms.pbc,
                k,
                cutoff,
                centres=batch[slot][2],
                candidates=batch[slot][3],
            )
            wrapped, table = wrap_positions(atoms.positions, atoms.cell.array, atoms.pbc, table)
        except ValueError as error:
            raise ValueError(f"structure {structure}: {error}") from None
        positions[slot, :n_atoms] = wrapped
        index[slot, :n_atoms], shift[slot, :n_atoms] = table.index, table.shift
        mask[slot, :n_atoms] = table.mask
    return positions, cells, NeighbourTable(index=index, shift=shift, mask=mask)


def _dispatch(items, batch, stack, n_bucket, k, cutoff, dtype):
    """Builds one stack's tables and launches the jitted call.

    Returns the device array without waiting for it: JAX dispatches asynchronously, so the
    host builds the next stack's tables while this one is computed.
    """
    positions, cells, table = _stack_tables(items, batch, stack, n_bucket, k, cutoff)
    # numpy arguments go to the jitted function as they are (converted on the host): wrapping
    # them in jnp.asarray first compiles a small copy or conversion program per shape and dtype
    # (six of them per size bucket on a cold start).
    return _stacked_descriptors(
        np.asarray(positions, dtype=dtype),
        np.asarray(cells, dtype=dtype),
        NeighbourTable(table.index, table.shift, table.mask),
        cutoff,
    )


def _evaluate(items, k, cutoff, dtype, requests_of, blocks_per_structure):
    """Descriptor blocks of every structure: ``result[i][b]`` is (n_atoms_i, 2k - 1).

    ``requests_of(atoms)`` lists one ``(centres, candidates)`` pair of masks (or None) per
    block. Structures are grouped by size bucket (known from the atom counts alone), and each
    stack's tables are built just before it is launched, overlapping host and device work.
    """
    width = descriptor_width(k)
    results = [[None] * blocks_per_structure for _ in items]
    by_bucket: dict[int, list[int]] = {}
    for index, atoms in enumerate(items):
        by_bucket.setdefault(bucket_size(len(atoms)), []).append(index)
    launched = []
    for n_bucket, members in by_bucket.items():
        stack = _structures_per_call(n_bucket, len(members) * blocks_per_structure)
        batch = []
        for index in members:
            for block, (centres, candidates) in enumerate(requests_of(items[index])):
                batch.append((index, block, centres, candidates))
                if len(batch) == stack:
                    out = _dispatch(items, batch, stack, n_bucket, k, cutoff, dtype)
                    launched.append((out, batch))
                    batch = []
        if batch:
            launched.append((_dispatch(items, batch, stack, n_bucket, k, cutoff, dtype), batch))
    for out, batch in launched:
        out = np.asarray(out)
        for slot, (index, block, _, _) in enumerate(batch):
            results[index][block] = out[slot, : len(items[index]), :width]
    return results


def descriptors(structures, k: int = DEFAULT_K, cutoff: float = DEFAULT_CUTOFF, *, dtype=None):
    """QUESTS descriptors of every atom of one structure or of a dataset.

    Args:
        structures: an ``ase.Atoms`` or a list/iterator of them. Each axis honours its ``pbc`` flag;
            periodic images are included explicitly, so small and skewed cells work.
        k: number of nearest neighbours (>= 1).
        cutoff: cutoff radius rc in Angstrom (> 0).
        dtype: floating dtype of the result; default float32, or float64 when JAX x64 is enabled.

    Returns:
        numpy array of shape (n_env, 2k - 1), rows in input order (structure by structure,
        atom by atom), in 1/Angstrom.

    Raises:
        ValueError: no structures, an empty structure, NaN/inf positions, a singular periodic
            cell, k < 1, cutoff <= 0, or two atoms at the same position.

    Example:
        >>> from ase.build import bulk
        >>> import jaxinfo
        >>> jaxinfo.descriptors(bulk("Cu", "fcc", a=3.61, cubic=True)).shape
        (4, 63)
    """
    k, cutoff, dtype = check_k(k), check_cutoff(cutoff), _float_dtype(dtype)
    items = _as_structure_list(structures)
    if not items:
        raise ValueError("no structures given")
    blocks = _evaluate(items, k, cutoff, dtype, _full_requests, 1)
    return np.concatenate([rows for (rows,) in blocks], axis=0)


def _species_of(items, species: Sequence[str] | None) -> list[str]:
    present = {symbol for atoms in items for symbol in atoms.get_chemical_symbols()}
    if species is None:
        return sorted(present)
    species = list(species)
    if not species or len(set(species)) != len(species):
        raise ValueError(f"species must be a non-empty list of distinct symbols, got {species}")
    missing = sorted(present - set(species))
    if missing:
        raise ValueError(
            f"species {missing} occur in the structures but not in species={species}: "
            "their atoms would get zero rows in every species block"
        )
    return species


def species_descriptors(
    structures,
    k: int = DEFAULT_K,
    cutoff: float = DEFAULT_CUTOFF,
    *,
    species: Sequence[str] | None = None,
    dtype=None,
):
    """Species-resolved descriptors: the full descriptor followed by one block per species.

    Column layout, each block of width 2k - 1 = ``[x1 | x2]``::

        [ full | species[0] | species[1] | ... ]

    Block s is the descriptor of each atom of species s computed from the atoms of species s
    alone (same-species neighbours only); rows of atoms of other species are zero in block s.

    Args:
        structures: an ``ase.Atoms`` or a list of them.
        k: number of nearest neighbours (>= 1).
        cutoff: cutoff radius in Angstrom.
        species: chemical symbols, in block order; default the sorted symbols of the dataset.
        dtype: floating dtype of the result (see :func:`descriptors`).

    Returns:
        (n_env, (1 + n_species) * (2k - 1)) numpy array, rows in input order.
    """
    k, cutoff, dtype = check_k(k), check_cutoff(cutoff), _float_dtype(dtype)
    items = _as_structure_list(structures)
    if not items:
        raise ValueError("no structures given")
    symbols = _species_of(items, species)

    def requests_of(atoms):
        numbers = np.asarray(atoms.get_chemical_symbols())
        return [(None, None)] + [(numbers == symbol,) * 2 for symbol in symbols]

    blocks = _evaluate(items, k, cutoff, dtype, requests_of, 1 + len(symbols))
    return np.concatenate([np.concatenate(parts, axis=1) for parts in blocks], axis=0)
