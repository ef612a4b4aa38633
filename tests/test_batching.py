"""Datasets: padded size buckets, input order, iterators, compilation counts and dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from helpers import (
    assert_rows_close,
    boundary_ties,
    build_structure,
    random_cell,
    random_positions_in_cell,
    rattle,
    reference_descriptors,
    tolerance,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxinfo
from jaxinfo import batching
from jaxinfo.descriptor import structure_descriptors
from jaxinfo.neighbours import neighbour_table

K, CUTOFF = 16, 4.0


def tolerances(dtype):
    """(same, reference, tie): atol between two jaxinfo paths (float32: different padded shapes
    may round differently by a unit in the last place, entries <~ 1), atol against the float64
    numpy reference, and the distance gap below which k-th/(k+1)-th neighbours count as tied
    (float32 rounds distances at ~1e-6 Angstrom, so closer pairs may swap)."""
    return (
        tolerance(dtype, float32=1e-7, float64=1e-13),
        tolerance(dtype, float32=1e-6, float64=1e-11),
        tolerance(dtype, float32=1e-5, float64=1e-8),
    )


def _allowed_buckets(limit=2**22):
    values = {2**a for a in range(3, 23)} | {3 * 2 ** (a - 1) for a in range(3, 23)}
    return sorted(v for v in values if v <= limit)


ALLOWED = _allowed_buckets()


@pytest.mark.parametrize(
    ("n", "bucket"),
    [(1, 8), (8, 8), (9, 12), (12, 12), (13, 16), (17, 24), (24, 24), (25, 32), (33, 48),
     (49, 64), (65, 96), (97, 128), (1000, 1024), (1025, 1536), (2048, 2048), (2049, 3072),
     (3073, 4096), (4097, 5120)],
)  # fmt: skip
def test_bucket_size_values(n, bucket):
    """Buckets 8, 12, 16, 24, 32, 48, ..., 2048, then multiples of 1024: the smallest >= n."""
    assert batching.bucket_size(n) == bucket


@given(n=st.integers(1, 2**21))
def test_bucket_size_properties(n):
    """Up to 2048 atoms: the smallest of 8, 12, 16, 24, ... >= n, wasting less than a third;
    beyond: the next multiple of 1024. Buckets are fixed points and monotone in n."""
    bucket = batching.bucket_size(n)
    if n <= 2048:
        assert bucket == min(v for v in ALLOWED if v >= n)
        if n > 8:
            assert (bucket - n) / bucket < 1 / 3
    else:
        assert bucket % 1024 == 0 and 0 <= bucket - n < 1024
    assert batching.bucket_size(bucket) == bucket
    assert batching.bucket_size(n + 1) >= bucket


def _mixed_dataset():
    cu32 = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    return [
        build_structure("molecule", 1),
        build_structure("fcc", 2),
        build_structure("one_atom", 3),
        build_structure("cluster", 4),
        build_structure("triclinic", 5),
        rattle(cu32, 0.05, np.random.default_rng(6)),
        build_structure("hcp", 7),
        build_structure("molecule", 8),
    ]


def test_dataset_equals_concatenation_in_input_order(dtype):
    """Mixed sizes and pbc in one call: rows equal the per-structure results, in input order."""
    same, ref_atol, tie_tol = tolerances(dtype)
    items = _mixed_dataset()
    x = jaxinfo.descriptors(items, k=K, cutoff=CUTOFF)
    assert x.shape == (sum(len(a) for a in items), 2 * K - 1)
    parts = [jaxinfo.descriptors(a, k=K, cutoff=CUTOFF) for a in items]
    assert x.dtype == dtype
    np.testing.assert_allclose(x, np.concatenate(parts), rtol=0, atol=same)
    # And against the independent numpy reference, structure by structure.
    start = 0
    for atoms in items:
        rows = slice(start, start + len(atoms))
        expected = reference_descriptors(atoms, K, CUTOFF)
        tied = boundary_ties(atoms, K, CUTOFF, tol=tie_tol)
        assert_rows_close(x[rows], expected, K, tied, atol=ref_atol)
        start += len(atoms)


def test_both_neighbour_searches_give_the_same_rows(dtype):
    """Small fully periodic / open structures take the stacked search, slabs and cells with too
    many candidates the cell list; each row equals the cell-list table's descriptor."""
    slab = build_structure("fcc", 12)
    slab.pbc = [True, True, False]
    rng = np.random.default_rng(13)
    # 640 atoms x 4 translations per pair: more candidates than the stacked search takes.
    big = rattle(bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 40)), 0.05, rng)
    items = [*_mixed_dataset(), slab, big]
    x = jaxinfo.descriptors(items, k=K, cutoff=CUTOFF)
    periodic = np.array([a.pbc.all() for a in items])
    cells = np.array([a.cell.array for a in items])
    images = batching.stacked_image_counts(cells, periodic, CUTOFF).prod(axis=1)
    assert images[-1] * batching.bucket_size(len(big)) > batching.MAX_STACKED_CANDIDATES
    start = 0
    for atoms in items:
        table = neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, K, CUTOFF)
        # In float64 always: in float32, structure_descriptors on raw positions (the 640-atom
        # cell is 144 A long) rounds them at ~1e-5 A; the batched path must not.
        with jax.enable_x64(True):
            expected = jax.jit(structure_descriptors, static_argnums=3)(
                jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array), table, CUTOFF
            )
        # Rattled and random structures: no tied k-th neighbours, so x2 is unique too. In
        # float32, r_j + shift @ cell - r_i cancels numbers as large as the cell (144 A here):
        # the error grows with the cell length (measured 2e-6 for the long cell, <3e-7 else).
        length = max(10.0, atoms.cell.lengths().max())
        atol = tolerance(dtype, float32=1e-7 * length, float64=1e-12)
        np.testing.assert_allclose(x[start : start + len(atoms)], expected, rtol=0, atol=atol)
        start += len(atoms)


def test_stacked_search_slots():
    """Which stack slots the vectorised search takes: small periodic and open structures; not
    slabs, not unused slots, not structures with more candidates than the budget."""
    pbc = np.array([[1, 1, 1], [0, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=bool)
    cells = np.array([np.eye(3) * 8.0] * 3 + [np.eye(3) * 1.0, np.eye(3) * 8.0])
    chosen = batching._stacked_search_slots(pbc, cells, 32, 4, 5.0)
    # 32 atoms x 11^3 translations of the 1 A cell exceed MAX_STACKED_CANDIDATES.
    assert chosen.tolist() == [True, True, False, False, False]


def test_dataset_order_matters(dtype):
    """Reversing the input list reverses the blocks of rows."""
    items = _mixed_dataset()[:4]
    forward = jaxinfo.descriptors(items, k=K, cutoff=CUTOFF)
    backward = jaxinfo.descriptors(items[::-1], k=K, cutoff=CUTOFF)
    sizes = np.cumsum([0] + [len(a) for a in items])
    blocks = [forward[sizes[i] : sizes[i + 1]] for i in range(len(items))]
    same, _, _ = tolerances(dtype)
    np.testing.assert_allclose(backward, np.concatenate(blocks[::-1]), rtol=0, atol=same)


def test_accepts_iterators_and_single_atoms(dtype):
    """A generator, an iterator, a tuple and a single Atoms all work."""
    atol = tolerance(dtype, float32=1e-7, float64=1e-14)
    items = _mixed_dataset()[:3]
    expected = jaxinfo.descriptors(items, k=K, cutoff=CUTOFF)
    for source in ((a for a in items), iter(items), tuple(items), map(lambda a: a, items)):
        x = jaxinfo.descriptors(source, k=K, cutoff=CUTOFF)
        np.testing.assert_allclose(x, expected, rtol=0, atol=atol)
    single = jaxinfo.descriptors(items[1], k=K, cutoff=CUTOFF)
    rows = slice(len(items[0]), len(items[0]) + len(items[1]))
    np.testing.assert_allclose(single, expected[rows], rtol=0, atol=atol)


def _random_structure(n_atoms, seed):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng, volume=14.0 * n_atoms, shear=0.5)
    return random_positions_in_cell(rng, cell, True, n_atoms, min_dist=1.0)


def test_same_bucket_does_not_recompile(dtype):
    """20-atom then 22-atom structures (both bucket 24, same count): no new compilation.
    Likewise 3 then 4 structures (both stacked 4 per call)."""
    compiled = batching._stacked_descriptors._cache_size
    batch_20 = [_random_structure(20, seed) for seed in range(3)]
    batch_22 = [_random_structure(22, seed) for seed in range(3, 7)]
    jaxinfo.descriptors(batch_20, k=K, cutoff=CUTOFF)
    before = compiled()
    x = jaxinfo.descriptors(batch_22[:3], k=K, cutoff=CUTOFF)
    assert compiled() == before, "a structure of the same bucket recompiled"
    jaxinfo.descriptors(batch_22, k=K, cutoff=CUTOFF)
    assert compiled() == before, "a stack of the same padded count recompiled"
    # A different bucket does compile (the counter works).
    jaxinfo.descriptors([_random_structure(26, 9)] * 3, k=K, cutoff=CUTOFF)
    assert compiled() == before + 1
    _, ref_atol, _ = tolerances(dtype)
    expected = reference_descriptors(batch_22[0], K, CUTOFF)
    np.testing.assert_allclose(x[:22], expected, rtol=0, atol=ref_atol)


def test_dataset_of_200_structures_compiles_a_handful_of_times(dtype):
    """~200 structures of 4 to 60 atoms: one compilation per bucket at most, none on a rerun."""
    rng = np.random.default_rng(0)
    host = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 4))  # 64 sites
    sizes = rng.integers(4, 61, 200)
    items = []
    for n in sizes:
        atoms = rattle(host, 0.05, rng)
        items.append(atoms[rng.choice(len(host), n, replace=False)])
    k, cutoff = 8, 3.0
    compiled = batching._stacked_descriptors._cache_size
    before = compiled()
    x = jaxinfo.descriptors(items, k=k, cutoff=cutoff)
    buckets = {batching.bucket_size(n) for n in sizes}
    assert len(buckets) == 7
    assert compiled() - before <= len(buckets)
    assert x.shape == (sizes.sum(), 2 * k - 1)
    after = compiled()
    np.testing.assert_array_equal(jaxinfo.descriptors(items, k=k, cutoff=cutoff), x)
    assert compiled() == after, "a second pass over the same dataset recompiled"
    # Spot check: the last structure's rows against the numpy reference.
    last = items[-1]
    expected = reference_descriptors(last, k, cutoff)
    _, ref_atol, tie_tol = tolerances(dtype)
    tied = boundary_ties(last, k, cutoff, tol=tie_tol)
    assert_rows_close(x[-len(last) :], expected, k, tied, atol=ref_atol)


# --------------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------------


def test_default_dtype_follows_x64(dtype):
    """With x64 enabled the default is float64; with it disabled, float32 (and float64 cannot
    be requested)."""
    atoms = build_structure("fcc", 0)
    assert jaxinfo.descriptors(atoms, k=K, cutoff=CUTOFF).dtype == dtype
    with jax.enable_x64(True):
        assert jaxinfo.descriptors(atoms, k=K, cutoff=CUTOFF).dtype == np.float64
    with jax.enable_x64(False):
        x32 = jaxinfo.descriptors(atoms, k=K, cutoff=CUTOFF)
        assert x32.dtype == np.float32
        with pytest.raises(ValueError, match="x64"):
            jaxinfo.descriptors(atoms, k=K, cutoff=CUTOFF, dtype=jnp.float64)


@settings(max_examples=5)
@given(seed=st.integers(0, 2**16))
def test_float32_close_to_float64(seed):
    """dtype=float32 (with x64 on or off) gives float32 results within 1e-5 of float64."""
    atoms = build_structure("triclinic", seed)
    with jax.enable_x64(True):
        x64 = jaxinfo.descriptors(atoms, dtype=jnp.float64)
    x32 = jaxinfo.descriptors(atoms, dtype=jnp.float32)
    assert x32.dtype == np.float32
    tied = boundary_ties(atoms, 32, 5.0, tol=1e-5)
    assert_rows_close(x32.astype(np.float64), x64, 32, tied, atol=1e-5)


def test_float32_on_stored_reference(reference):
    """float32 on the stored rattled fcc Cu: within 1e-5 of the peer's float64 first rows."""
    from helpers import atoms_from_reference

    atoms = atoms_from_reference(reference["structures"]["cu_fcc_rattled"])
    x32 = jaxinfo.descriptors(atoms, dtype=jnp.float32)
    first = np.asarray(reference["descriptors"]["cu_fcc_rattled"]["first_rows"])
    np.testing.assert_allclose(x32[: len(first)], first, rtol=0, atol=1e-5)


def test_float32_accuracy_does_not_depend_on_distance_from_the_cell():
    """Atoms displaced by up to +-300 lattice vectors (unwrapped MD coordinates, ~2000 A from
    the origin) describe the same crystal: float32 must stay within 1e-5 of float64 as it does
    for wrapped atoms. Fails while positions reach the device unwrapped: r_j + shift @ cell - r_i
    cancels large float32 numbers (error ~2.5e-8 per A of distance from the origin)."""
    atoms = build_structure("fcc", 3)
    far = atoms.copy()
    jumps = np.random.default_rng(0).integers(-300, 301, (len(atoms), 3))
    far.positions = atoms.positions + jumps @ atoms.cell.array
    tied = boundary_ties(atoms, 32, 5.0, tol=1e-5)
    with jax.enable_x64(True):
        reference = jaxinfo.descriptors(atoms, dtype=jnp.float64)
        # Float64 is unaffected (the invariance tests check this at 1e-10).
        far64 = jaxinfo.descriptors(far, dtype=jnp.float64)
    assert_rows_close(far64, reference, 32, tied, 1e-10)
    x32 = jaxinfo.descriptors(far, dtype=jnp.float32).astype(np.float64)
    assert_rows_close(x32, reference, 32, tied, atol=1e-5)
