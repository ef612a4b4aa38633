"""Neighbour tables against an independent brute-force search over explicit periodic images."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from helpers import brute_force_distances, build_structure, random_cell, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxinfo.neighbours import (
    NeighbourTable,
    neighbour_table,
    pad_table,
    stacked_image_counts,
    stacked_neighbour_tables,
)


def table_distances(positions, cell, table):
    """(n, k) distances of the table's slots, recomputed in numpy from index and shift."""
    positions, cell = np.asarray(positions, float), np.asarray(cell, float)
    vectors = positions[table.index] + table.shift @ cell - positions[:, None, :]
    return np.linalg.norm(vectors, axis=-1)


def check_table(positions, cell, pbc, k, cutoff, table):
    """Table shapes, dtypes, mask counts, sorted distances and empty slots vs. brute force."""
    n = len(positions)
    assert table.index.shape == (n, k) and table.index.dtype == np.int32
    assert table.shift.shape == (n, k, 3) and table.shift.dtype == np.int32
    assert table.mask.shape == (n, k) and table.mask.dtype == bool
    distances = table_distances(positions, cell, table)
    # A pair within round-off of the cutoff may be in or out (its weight is zero either way).
    expected = brute_force_distances(positions, cell, pbc, cutoff + 1e-9)
    for i in range(n):
        mask = table.mask[i]
        count = int(mask.sum())
        certain = int(np.sum(expected[i] < cutoff - 1e-9))
        assert min(k, certain) <= count <= min(k, len(expected[i])), f"row {i}"
        # Filled slots come first, then empty ones.
        assert mask.tolist() == [True] * count + [False] * (k - count), f"row {i}"
        np.testing.assert_allclose(
            distances[i, :count], expected[i][:count], rtol=0, atol=1e-9, err_msg=f"row {i}"
        )
        # Slots are ordered by ascending distance.
        assert np.all(np.diff(distances[i, :count]) >= -1e-12)
        # Empty slots point at atom 0 with zero shift.
        assert np.all(table.index[i, count:] == 0)
        assert np.all(table.shift[i, count:] == 0)
    # A non-periodic axis never carries a shift.
    non_periodic = ~np.broadcast_to(np.asarray(pbc, bool), (3,))
    assert np.all(table.shift[..., non_periodic] == 0)


def stacked_table(positions, cell, periodic, k, cutoff, companion=None):
    """The structure's table from stacked_neighbour_tables, stacked after ``companion``
    (another structure, padded differently) so that padding and stacking are exercised."""
    positions, cell = np.asarray(positions, float), np.asarray(cell, float)
    companion = positions[:1] + 0.3 if companion is None else companion
    n = max(len(positions), len(companion))
    stack = np.zeros((2, n, 3))
    stack[0, : len(companion)], stack[1, : len(positions)] = companion, positions
    wrapped, table = stacked_neighbour_tables(
        stack, [len(companion), len(positions)], [cell, cell], [periodic] * 2, k, cutoff
    )
    m = len(positions)
    assert not table.mask[1, m:].any()
    row = NeighbourTable(table.index[1, :m], table.shift[1, :m], table.mask[1, :m])
    return wrapped[1, :m], row


def assert_table_matches_brute_force(positions, cell, pbc, k, cutoff):
    """Both searches (cell list; stacked, for fully periodic or open structures) against brute
    force; returns the cell-list table."""
    positions = np.asarray(positions, float)
    table = neighbour_table(positions, cell, pbc, k, cutoff)
    check_table(positions, cell, pbc, k, cutoff, table)
    flags = np.broadcast_to(np.asarray(pbc, bool), (3,))
    if flags.all() or not flags.any():
        wrapped, stacked = stacked_table(positions, cell, bool(flags.all()), k, cutoff)
        check_table(wrapped, cell, pbc, k, cutoff, stacked)
    return table


def test_one_atom_cell_has_only_images_of_itself():
    """One-atom bcc cell: all 32 slots are images of atom 0, at the bcc shell distances."""
    atoms = bulk("Fe", "bcc", a=2.87)
    table = assert_table_matches_brute_force(atoms.positions, atoms.cell.array, True, 32, 5.0)
    assert table.mask.all()
    assert np.all(table.index == 0)
    assert np.all(np.any(table.shift != 0, axis=-1))
    distances = table_distances(atoms.positions, atoms.cell.array, table)[0]
    a = 2.87
    shells = [(8, a * np.sqrt(3) / 2), (6, a), (12, a * np.sqrt(2))]
    start = 0
    for count, radius in shells:
        np.testing.assert_allclose(distances[start : start + count], radius, atol=1e-12)
        start += count


def test_cell_much_smaller_than_cutoff():
    """A 1.2 A cubic cell with a 6 A cutoff: every one of ~500 images in reach is listed."""
    cell = np.eye(3) * 1.2
    table = assert_table_matches_brute_force([[0.1, 0.2, 0.3]], cell, True, 600, 6.0)
    assert 450 < table.mask.sum() < 600
    # Self images sit at 1.2 |n|: |n_x| = 4 is the largest shift along an axis within 6 A.
    assert np.abs(table.shift).max() == 4


@pytest.mark.parametrize("right_handed", [True, False], ids=["right-handed", "left-handed"])
def test_strongly_triclinic_cells(right_handed):
    """Strongly sheared cells of either handedness (negative determinant) match brute force."""
    rng = np.random.default_rng(3)
    cell = random_cell(rng, volume=30.0, shear=2.0, right_handed=right_handed)
    assert (np.linalg.det(cell) > 0) == right_handed
    positions = rng.uniform(0, 1, (3, 3)) @ cell
    assert_table_matches_brute_force(positions, cell, True, 60, 5.0)


@pytest.mark.parametrize(
    ("pbc", "cell"),
    [
        ([True, True, False], [[2.6, 0.0, 0.0], [1.1, 2.4, 0.0], [0.0, 0.0, 9.0]]),
        ([True, True, False], [[2.6, 0.0, 0.0], [1.1, 2.4, 0.0], [0.0, 0.0, 0.0]]),
        ([True, False, True], [[2.6, 0.0, 0.0], [0.0, 7.0, 0.0], [0.8, 0.5, 2.2]]),
        ([False, False, True], [[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.4, 0.3, 2.1]]),
        ([False, False, True], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.1]]),
    ],
    ids=["slab", "slab-zero-c", "slab-xz", "wire", "wire-zero-ab"],
)
def test_slabs_and_wires_honour_each_axis(pbc, cell):
    """Mixed pbc: images only along periodic axes (zero non-periodic vectors are fine)."""
    positions = [[0.1, 0.2, 0.3], [1.3, 0.9, 1.4], [0.4, 1.7, -0.6]]
    table = assert_table_matches_brute_force(positions, cell, pbc, 40, 5.0)
    periodic = np.asarray(pbc)
    assert np.any(table.shift[..., periodic] != 0), "periodic axes must contribute images"


def test_slab_is_not_treated_as_open():
    """A one-atom slab has in-plane images as neighbours; the open molecule has none."""
    cell = np.diag([2.5, 2.5, 10.0])
    slab = neighbour_table([[0.0, 0.0, 0.0]], cell, [True, True, False], 16, 4.0)
    open_ = neighbour_table([[0.0, 0.0, 0.0]], cell, False, 16, 4.0)
    assert slab.mask.sum() == 8  # 4 at 2.5 A, 4 at 3.54 A
    assert not open_.mask.any()


def test_molecule_fewer_than_k_atoms_masks_missing_slots():
    """Water with k = 8: two neighbours per atom, six masked slots."""
    atoms = molecule("H2O")
    table = assert_table_matches_brute_force(atoms.positions, np.zeros((3, 3)), False, 8, 5.0)
    assert table.mask.sum(axis=1).tolist() == [2, 2, 2]


def test_open_structure_ignores_cell():
    """With pbc False the cell (even a singular or sheared one) does not matter."""
    atoms = molecule("CH4")
    reference = neighbour_table(atoms.positions, np.zeros((3, 3)), False, 8, 5.0)
    for cell in (np.eye(3) * 0.5, [[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]):
        other = neighbour_table(atoms.positions, cell, False, 8, 5.0)
        np.testing.assert_array_equal(other.index, reference.index)
        np.testing.assert_array_equal(other.mask, reference.mask)
        np.testing.assert_array_equal(other.shift, 0)


def test_isolated_atom_has_empty_row():
    """An atom farther than the cutoff from everything has an all-False mask row."""
    positions = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [30.0, 0.0, 0.0]]
    table = assert_table_matches_brute_force(positions, np.zeros((3, 3)), False, 4, 5.0)
    assert not table.mask[2].any()


def test_atoms_outside_the_cell():
    """Atoms several cells away from the home cell get the same environments."""
    rng = np.random.default_rng(7)
    cell = random_cell(rng, volume=40.0, shear=0.7)
    positions = rng.uniform(-3, 4, (4, 3)) @ cell
    assert_table_matches_brute_force(positions, cell, True, 30, 4.5)
    assert_table_matches_brute_force(positions, cell, [True, False, True], 30, 4.5)


def test_neighbour_exactly_at_cutoff_is_excluded():
    """Pairs at distance >= cutoff are left out (their weight is zero anyway)."""
    table = neighbour_table([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]], np.zeros((3, 3)), False, 4, 4.0)
    assert not table.mask.any()
    table = neighbour_table([[0.0, 0.0, 0.0], [3.999, 0.0, 0.0]], np.zeros((3, 3)), False, 4, 4.0)
    assert table.mask.sum() == 2
    for x, expected in ((4.0, 0), (3.999, 1)):
        _, stacked = stacked_table([[0.0, 0.0, 0.0], [x, 0.0, 0.0]], np.eye(3), False, 4, 4.0)
        assert stacked.mask.sum() == 2 * expected


def test_centres_and_candidates_select_sub_structure():
    """centres/candidates give the table of the sub-structure, empty rows elsewhere."""
    atoms = build_structure("triclinic", 11)
    chosen = np.arange(len(atoms)) % 2 == 0
    table = neighbour_table(
        atoms.positions, atoms.cell.array, True, 24, 5.0, centres=chosen, candidates=chosen
    )
    assert not table.mask[~chosen].any()
    assert np.all(chosen[table.index[table.mask]])
    sub = atoms[chosen]
    expected = brute_force_distances(sub.positions, sub.cell.array, True, 5.0)
    distances = table_distances(atoms.positions, atoms.cell.array, table)[chosen]
    for row, mask, exp in zip(distances, table.mask[chosen], expected, strict=True):
        np.testing.assert_allclose(row[mask], exp[: mask.sum()], atol=1e-9)
        assert mask.sum() == min(24, len(exp))


def test_pad_table_adds_empty_rows():
    """pad_table appends masked-out rows and refuses to shrink a table."""
    table = neighbour_table([[0.0, 0, 0], [1.0, 0, 0]], np.zeros((3, 3)), False, 3, 5.0)
    padded = pad_table(table, 5)
    assert isinstance(padded, NeighbourTable)
    assert (padded.n_atoms, padded.k) == (5, 3)
    np.testing.assert_array_equal(padded.mask[:2], table.mask)
    assert not padded.mask[2:].any()
    with pytest.raises(ValueError, match="pad"):
        pad_table(table, 1)


@st.composite
def geometries(draw):
    """Random (positions, cell, pbc) covering tiny, triclinic, mirrored, slab, wire and open."""
    rng = np.random.default_rng(draw(seeds))
    n_atoms = draw(st.integers(1, 6))
    volume = draw(st.sampled_from([2.0, 8.0, 30.0, 80.0]))  # 2 A^3: cell far below the cutoff
    cell = random_cell(rng, volume, shear=draw(st.sampled_from([0.0, 0.7, 2.0])))
    if draw(st.booleans()):
        cell = cell[[1, 0, 2]]  # left-handed
    pbc = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    # Positions anywhere, also far outside the cell; reject coincident atoms.
    positions = rng.uniform(-1.5, 2.5, (n_atoms, 3)) @ cell
    close = [d[0] for d in brute_force_distances(positions, cell, pbc, 0.5) if len(d)]
    if close:
        positions = positions[:1]
    return positions, cell, pbc


@settings(max_examples=40)
@given(geometry=geometries(), k=st.integers(1, 48), cutoff=st.floats(1.5, 6.0))
def test_table_matches_brute_force_random(geometry, k, cutoff):
    """Random cells, pbc flags, k and cutoff: the table equals the brute-force search."""
    positions, cell, pbc = geometry
    assert_table_matches_brute_force(positions, cell, pbc, k, cutoff)


def test_one_atom_slab_with_tiny_cell_and_no_neighbours_in_reach():
    """Fewer candidates than k in reach: the count is min(k, number in reach)."""
    atoms = Atoms("Cu", positions=[[0, 0, 0]], cell=np.diag([3.0, 3.0, 3.0]), pbc=[1, 0, 0])
    table = assert_table_matches_brute_force(atoms.positions, atoms.cell.array, atoms.pbc, 8, 5.0)
    assert table.mask.sum() == 2  # +-a only


def test_stacked_image_counts():
    """floor(2 rc / plane spacing) + 1 translations per periodic axis, one for open structures."""
    cells = np.array([np.diag([10.0, 4.0, 2.4]), np.diag([10.0, 4.0, 2.4])])
    counts = stacked_image_counts(cells, np.array([True, False]), 5.0)
    assert counts.tolist() == [[2, 3, 5], [1, 1, 1]]
    # A sheared cell: the spacing of the planes (volume / area of the other two vectors), not
    # the length of the vector, counts: 36/|b x c| = 1.18 A, 36/|c x a| = 1 A (exactly 2 rc /
    # spacing = 4: five translations), 6 A.
    sheared = np.array([[[6.0, 0.0, 0.0], [5.0, 1.0, 0.0], [0.0, 0.0, 6.0]]])
    assert stacked_image_counts(sheared, np.array([True]), 2.0).tolist() == [[4, 5, 1]]


@settings(max_examples=25)
@given(
    geometry=geometries(),
    companion=geometries(),
    k=st.integers(1, 40),
    cutoff=st.floats(1.5, 6.0),
)
def test_stacked_tables_match_brute_force_random(geometry, companion, k, cutoff):
    """Stacks of two random structures (different sizes, cells, periodic or open): each row of
    the stacked search equals brute force; wrapped positions keep every neighbour vector."""
    positions, cell, pbc = geometry
    periodic = bool(np.all(pbc))
    flags = [periodic] * 3
    wrapped, table = stacked_table(positions, cell, periodic, k, cutoff, companion[0])
    check_table(wrapped, cell, flags, k, cutoff, table)
    reference = neighbour_table(positions, cell, flags, k, cutoff)
    np.testing.assert_allclose(
        np.sort(table_distances(wrapped, cell, table)[table.mask]),
        np.sort(table_distances(positions, cell, reference)[reference.mask]),
        atol=1e-9,
    )


def test_stacked_centres_and_candidates_equal_cell_list():
    """centres/candidates in the stacked search give the cell-list search's table."""
    atoms = build_structure("triclinic", 11)
    chosen = np.arange(len(atoms)) % 2 == 0
    expected = neighbour_table(
        atoms.positions, atoms.cell.array, True, 24, 5.0, centres=chosen, candidates=chosen
    )
    wrapped, table = stacked_neighbour_tables(
        atoms.positions[None], [len(atoms)], atoms.cell.array[None], [True], 24, 5.0,
        centres=chosen[None], candidates=chosen[None],
    )  # fmt: skip
    np.testing.assert_array_equal(table.mask[0], expected.mask)
    np.testing.assert_allclose(
        table_distances(wrapped[0], atoms.cell.array, NeighbourTable(*(a[0] for a in (
            table.index, table.shift, table.mask)))),
        table_distances(atoms.positions, atoms.cell.array, expected),
        atol=1e-9,
    )  # fmt: skip


def test_stacked_search_reports_coincident_atoms_by_name():
    """Two atoms at one position (or an atom on its own image) raise, naming the structure."""
    positions = np.array([[[0.0, 0, 0], [1.0, 0, 0]], [[0.5, 0.5, 0.5], [3.5, 0.5, 0.5]]])
    cells = np.array([np.eye(3) * 3.0] * 2)
    with pytest.raises(ValueError, match="structure 17: two atoms at the same position"):
        stacked_neighbour_tables(positions, [2, 2], cells, [False, True], 8, 4.0, names=[4, 17])
    with pytest.raises(ValueError, match=r"structure 1:.*atom 0 coincides with atom 1"):
        stacked_neighbour_tables(positions[:, [0, 0]], [1, 2], cells, [True, False], 8, 4.0)


# --------------------------------------------------------------------------------------------
# Moving neighbour lists (allocate on the host, update under jit)
# --------------------------------------------------------------------------------------------


def test_updated_table_equals_a_fresh_host_build_along_a_random_walk():
    import jax

    from jaxinfo.neighbours import neighbour_list

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=0)
    cell, pbc = atoms.cell.array, atoms.pbc
    fns = neighbour_list(k=8, cutoff=4.0, skin=0.6)
    neighbours = fns.allocate(atoms.positions, cell, pbc)
    assert not neighbours.overflow
    update = jax.jit(fns.update)
    rng = np.random.default_rng(0)
    positions, allocations = atoms.positions.copy(), 0
    for step in range(30):
        # Large moves: 0.08 Å per coordinate and step, so the skin is used up within a few.
        positions = positions + rng.normal(scale=0.08, size=positions.shape)
        neighbours = update(positions, cell, neighbours)
        if neighbours.overflow:
            allocations += 1
            neighbours = fns.allocate(positions, cell, pbc)
        fresh = neighbour_table(positions, cell, pbc, 8, 4.0)
        for name in ("index", "shift", "mask"):
            np.testing.assert_array_equal(
                np.asarray(getattr(neighbours.table, name)), getattr(fresh, name), f"{step}"
            )
    assert 3 <= allocations < 30


def test_neighbour_list_overflow_flags():
    import jax

    from jaxinfo.neighbours import neighbour_list

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    cell, pbc = atoms.cell.array, atoms.pbc
    # fcc Cu has 18 neighbours within 4.5 Å: 10 candidate slots are too few.
    assert (
        neighbour_list(k=8, cutoff=4.0, capacity=10).allocate(atoms.positions, cell, pbc).overflow
    )
    fns = neighbour_list(k=8, cutoff=4.0, skin=0.5)
    neighbours = fns.allocate(atoms.positions, cell, pbc)
    update = jax.jit(fns.update)
    moved = atoms.positions.copy()
    moved[3] += [0.2, 0.0, 0.0]  # within skin / 2
    assert not update(moved, cell, neighbours).overflow
    moved[3] += [0.1, 0.0, 0.0]  # beyond skin / 2
    assert update(moved, cell, neighbours).overflow
    # A 20 % strain changes distances within the radius by more than the skin.
    assert update(atoms.positions * 1.2, cell * 1.2, neighbours).overflow
    # Affine motion with the cell within the skin is fine.
    assert not update(atoms.positions * 1.02, cell * 1.02, neighbours).overflow
    # Open structures (zero cell) work too.
    molecule_ = molecule("C6H6")
    molecule_.rattle(0.05, seed=1)  # no tied distances
    open_list = neighbour_list(k=4, cutoff=3.0).allocate(
        molecule_.positions, np.zeros((3, 3)), False
    )
    updated = jax.jit(neighbour_list(k=4, cutoff=3.0).update)(
        molecule_.positions, np.zeros((3, 3)), open_list
    )
    assert not updated.overflow
    fresh = neighbour_table(molecule_.positions, np.zeros((3, 3)), False, 4, 3.0)
    np.testing.assert_array_equal(np.asarray(updated.table.index), fresh.index)


def test_default_capacity_is_bucketed_so_similar_structures_share_shapes():
    """The 84 bundled frames need 73-99 candidates per atom within 6.5 Å (19 counts), but get
    only three capacities, each >= 1.25 x the count: compiled steps are shared between them."""
    from jaxinfo.datasets import load_example
    from jaxinfo.neighbours import neighbour_list

    fns = neighbour_list(1, 6.0, skin=0.5)
    capacities = set()
    for frame in load_example():
        nbrs = fns.allocate(frame.positions, frame.cell.array, frame.pbc)
        needed = int(nbrs.candidates.mask.sum(axis=1).max())
        assert nbrs.candidates.k >= 1.25 * needed and not bool(nbrs.overflow)
        capacities.add(nbrs.candidates.k)
    assert len(capacities) <= 3, capacities
