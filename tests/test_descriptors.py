"""The QUESTS descriptor: parity with the peer (stored and live), a numpy reference, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from helpers import (
    OPEN_KINDS,
    PERIODIC_KINDS,
    assert_rows_close,
    atoms_from_reference,
    boundary_ties,
    random_cell,
    random_positions_in_cell,
    reference_descriptors,
    seeds,
    structures,
    tolerance,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxinfo
from jaxinfo.neighbours import neighbour_table

# (k, cutoff) pairs of the live parity tests; (32, 5.0) is the default.
PAIRS = [(8, 3.0), (16, 4.0), (32, 5.0), (48, 6.0)]


def parity_atol(dtype):
    """Entrywise atol against a float64 reference: 1e-9 in float64; 1e-6 in float32, which
    rounds at ~6e-8 relative and whose entries are <~ 1 / Angstrom (measured: <~ 2e-7)."""
    return tolerance(dtype, float32=1e-6, float64=1e-9)


def tie_tol(dtype):
    """Distance gap below which the k-th and (k+1)-th neighbours count as tied: float32 rounds
    distances at ~1e-6 Angstrom, so closer pairs may swap (see helpers.boundary_ties)."""
    return tolerance(dtype, float32=1e-5, float64=1e-8)


REFERENCE_STRUCTURES = [
    "cu_fcc_perfect",
    "cu_fcc_rattled",
    "cu_fcc_hot",
    "cu_fcc_prim333",
    "cu_fcc_prim333_rattled",
    "fe_bcc",
    "fe_bcc_prim1",
    "h2o",
    "c60",
    "si_diamond",
    "si_diamond_rattled",
]
REFERENCE_EXTRA = [
    "cu_fcc_rattled_k8_rc3.0",
    "cu_fcc_rattled_k16_rc4.0",
    "cu_fcc_rattled_k48_rc6.0",
]


def assert_matches_summary(x, entry, k, atol=1e-9):
    """Compares a descriptor matrix with a stored summary (first rows, column means, row norms).

    Perfect crystals whose k-th neighbour falls inside a degenerate shell carry a 'note': which
    members of that shell are kept is arbitrary (tie-breaking in the sort), so x1 is exact but
    x2 differs between implementations by up to ~4e-3. There only the k x1 columns are compared
    at ``atol``; x2 and the row norms (which mix in x2) are compared loosely, to catch gross
    errors only.
    """
    expected_shape = tuple(entry["shape"])
    assert x.shape == expected_shape
    first = np.asarray(entry["first_rows"])
    col_mean = np.asarray(entry["col_mean"])
    norms = np.asarray(entry["row_l2_norms"])
    exact = slice(None) if "note" not in entry else slice(0, k)
    np.testing.assert_allclose(x[: len(first), exact], first[:, exact], rtol=0, atol=atol)
    np.testing.assert_allclose(x.mean(axis=0)[exact], col_mean[exact], rtol=0, atol=atol)
    if "note" not in entry:
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), norms, rtol=0, atol=atol)
    else:
        np.testing.assert_allclose(x[: len(first)], first, rtol=0, atol=1e-2)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), norms, rtol=0, atol=1e-2)


# --------------------------------------------------------------------------------------------
# Parity with the stored peer reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REFERENCE_STRUCTURES)
def test_matches_stored_reference(reference, dtype, name):
    """Default k = 32, rc = 5 on the stored structures: 1e-9 in float64, 1e-6 in float32."""
    atoms = atoms_from_reference(reference["structures"][name])
    x = jaxinfo.descriptors(atoms)
    assert x.dtype == dtype
    assert_matches_summary(x, reference["descriptors"][name], k=32, atol=parity_atol(dtype))


@pytest.mark.parametrize("name", REFERENCE_EXTRA)
def test_matches_stored_reference_other_k_and_cutoff(reference, dtype, name):
    """Stored k/cutoff variants on rattled fcc Cu."""
    entry = reference["descriptors_extra"][name]
    k, cutoff = int(entry["k"]), float(entry["cutoff"])
    atoms = atoms_from_reference(reference["structures"][entry["structure"]])
    x = jaxinfo.descriptors(atoms, k=k, cutoff=cutoff)
    assert_matches_summary(x, entry, k=k, atol=parity_atol(dtype))


def test_matches_stored_reference_x1_x2_split(reference, dtype):
    """The peer's concat=False output (x1 and x2 of row 0) is our row 0 split at k."""
    entry = reference["descriptors_extra"]["cu_fcc_rattled_concat_false"]
    atoms = atoms_from_reference(reference["structures"]["cu_fcc_rattled"])
    x = jaxinfo.descriptors(atoms)
    assert x[:, :32].shape == tuple(entry["x1_shape"])
    assert x[:, 32:].shape == tuple(entry["x2_shape"])
    atol = parity_atol(dtype)
    np.testing.assert_allclose(x[0, :32], entry["x1_row0"], rtol=0, atol=atol)
    np.testing.assert_allclose(x[0, 32:], entry["x2_row0"], rtol=0, atol=atol)


# --------------------------------------------------------------------------------------------
# Live parity with the installed peer
# --------------------------------------------------------------------------------------------


@pytest.mark.peer
@pytest.mark.float64_only  # 1e-9 parity; float32: test_float32_matches_float64 below
@pytest.mark.parametrize(("k", "cutoff"), PAIRS)
@settings(max_examples=12)
@given(atoms=structures(kinds=PERIODIC_KINDS + OPEN_KINDS))
def test_matches_peer_live(peer_get_descriptors, atoms, k, cutoff):
    """Rattled crystals, one-atom/skewed/triclinic cells, clusters and molecules vs. the peer.

    Only all-periodic or all-open structures: the peer treats any other pbc as fully open.
    x2 is skipped on rows with a tie at the k-th neighbour (see helpers.boundary_ties).
    """
    expected = peer_get_descriptors([atoms], k=k, cutoff=cutoff)
    actual = jaxinfo.descriptors(atoms, k=k, cutoff=cutoff)
    assert_rows_close(actual, expected, k, boundary_ties(atoms, k, cutoff), atol=1e-9)


@pytest.mark.float32_only
@pytest.mark.parametrize(("k", "cutoff"), PAIRS)
@settings(max_examples=6)
@given(atoms=structures(kinds=PERIODIC_KINDS + OPEN_KINDS))
def test_float32_matches_float64(atoms, k, cutoff):
    """float32 descriptors agree with the float64 ones (pinned to the peer above) to 1e-6."""
    actual = jaxinfo.descriptors(atoms, k=k, cutoff=cutoff)
    assert actual.dtype == np.float32
    with jax.enable_x64(True):
        expected = jaxinfo.descriptors(atoms, k=k, cutoff=cutoff)
    assert expected.dtype == np.float64
    tied = boundary_ties(atoms, k, cutoff, tol=tie_tol(np.float32))
    assert_rows_close(actual, expected, k, tied, atol=parity_atol(np.float32))


@pytest.mark.peer
def test_matches_peer_on_dataset_in_one_call(peer_get_descriptors, dtype):
    """A list of mixed structures in one call equals the peer's concatenated output."""
    from helpers import build_structure

    items = [
        build_structure("fcc", 1),
        build_structure("molecule", 2),
        build_structure("bcc", 3),
        build_structure("triclinic", 4),
        build_structure("cluster", 5),
    ]
    k, cutoff = 16, 4.0
    tied = np.concatenate([boundary_ties(a, k, cutoff, tol=tie_tol(dtype)) for a in items])
    expected = peer_get_descriptors(items, k=k, cutoff=cutoff)
    actual = jaxinfo.descriptors(items, k=k, cutoff=cutoff)
    assert_rows_close(actual, expected, k, tied, atol=parity_atol(dtype))


# --------------------------------------------------------------------------------------------
# Parity with an independent numpy transcription (covers what the peer cannot: mixed pbc,
# left-handed cells)
# --------------------------------------------------------------------------------------------


@settings(max_examples=15)
@given(
    seed=seeds,
    pbc=st.sampled_from(
        [(True, True, True), (True, True, False), (True, False, True), (False, False, True)]
    ),
    right_handed=st.booleans(),
    n_atoms=st.integers(1, 8),
)
def test_matches_numpy_reference_any_pbc(dtype, seed, pbc, right_handed, n_atoms):
    """Slabs, wires and left-handed cells vs. brute-force neighbours + a numpy descriptor."""
    rng = np.random.default_rng(seed)
    cell = random_cell(rng, volume=15.0 * n_atoms, shear=1.0, right_handed=right_handed)
    atoms = random_positions_in_cell(rng, cell, pbc, n_atoms, min_dist=0.9)
    k, cutoff = 16, 4.0
    expected = reference_descriptors(atoms, k, cutoff)
    actual = jaxinfo.descriptors(atoms, k=k, cutoff=cutoff)
    tied = boundary_ties(atoms, k, cutoff, tol=tie_tol(dtype))
    atol = tolerance(dtype, float32=1e-6, float64=1e-11)
    assert_rows_close(actual, expected, k, tied, atol=atol)


def test_environment_descriptor_by_hand(dtype):
    """Two neighbours at 1 A and 2 A (orthogonal), one empty slot, rc = 5: values by hand."""
    vectors = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [9.0, 9.0, 9.0]])
    mask = jnp.array([True, True, False])
    x = np.asarray(jax.jit(jaxinfo.environment_descriptor)(vectors, mask, 5.0))
    w1, w2 = (1 - 1 / 25) ** 2, (1 - 4 / 25) ** 2
    s12 = np.sqrt(w1 * w2) / np.sqrt(5.0)
    # S rows: [0, s12, 0], [s12, 0, 0], [0, 0, 0] -> sorted, smallest dropped, summed / k.
    expected = [w1 / 1.0, w2 / 2.0, 0.0, 2 * s12 / 3, 0.0]
    assert x.dtype == dtype
    rtol = tolerance(dtype, float32=1e-6, float64=1e-14)
    np.testing.assert_allclose(x, expected, rtol=rtol, atol=0.1 * rtol)


def test_environment_descriptor_ignores_slot_order_and_masked_vectors(dtype):
    """Input slot order is irrelevant and vectors of masked slots are ignored (float32: up to a
    unit in the last place, as sums run in another order)."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 3)) * 2
    mask = np.array([True] * 6 + [False] * 2)
    descriptor = jax.jit(jaxinfo.environment_descriptor)
    x = descriptor(jnp.asarray(vectors), jnp.asarray(mask), 5.0)
    order = rng.permutation(8)
    garbage = vectors.copy()
    garbage[~mask] = 1e3 * rng.normal(size=(2, 3))
    y = descriptor(jnp.asarray(garbage[order]), jnp.asarray(mask[order]), 5.0)
    np.testing.assert_allclose(x, y, rtol=0, atol=tolerance(dtype, float32=1e-7, float64=1e-14))
    assert x.shape == (15,)


def test_si_diamond_zero_padding_beyond_cutoff():
    """Diamond Si at rc = 5 has 28 neighbours: the last 4 x1 slots are exactly zero."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    x = jaxinfo.descriptors(atoms)
    assert np.all(x[:, 28:32] == 0.0)
    assert np.all(x[:, :28] > 0.0)


def test_molecule_with_fewer_atoms_than_k(dtype):
    """Water with k = 32: two nonzero x1 entries per atom, and x2 divided by k (not by 3)."""
    atoms = molecule("H2O")
    x = jaxinfo.descriptors(atoms)
    assert x.shape == (3, 63)
    assert np.count_nonzero(x[:, :32], axis=1).tolist() == [2, 2, 2]
    expected = reference_descriptors(atoms, 32, 5.0)
    np.testing.assert_allclose(x, expected, rtol=0, atol=tolerance(dtype, 1e-6, 1e-14))


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _water(**changes):
    atoms = molecule("H2O")
    atoms.center(vacuum=3.0)
    for name, value in changes.items():
        setattr(atoms, name, value)
    return atoms


def _with_position(atoms, index, value):
    atoms = atoms.copy()
    positions = atoms.positions
    positions[index] = value
    atoms.positions = positions
    return atoms


BAD_STRUCTURES = {
    "empty": (Atoms(), "empty structure"),
    "nan": (_with_position(_water(), 1, [np.nan, 0.0, 0.0]), "NaN or inf"),
    "inf": (_with_position(_water(), 2, [0.0, np.inf, 0.0]), "NaN or inf"),
    "zero-cell": (Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], pbc=True), "singular cell"),
    "parallel-vectors": (
        Atoms(
            "Cu2",
            positions=[[0, 0, 0], [1, 1, 1]],
            cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]],
            pbc=True,
        ),
        "singular cell",
    ),
    "slab-with-parallel-in-plane-vectors": (
        Atoms("Cu", cell=[[3, 0, 0], [-3, 0, 0], [0, 0, 3]], pbc=[True, True, False]),
        "singular cell",
    ),
    "coincident-atoms": (
        Atoms("Cu2", positions=[[1, 1, 1], [1, 1, 1]], cell=np.eye(3) * 4, pbc=True),
        "same position",
    ),
    "coincident-through-image": (
        Atoms("Cu2", positions=[[0, 0, 0], [4, 0, 0]], cell=np.eye(3) * 4, pbc=True),
        "same position",
    ),
    "coincident-molecule": (
        Atoms("H3", positions=[[0, 0, 0], [1, 0, 0], [1, 0, 0]]),
        "same position",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STRUCTURES))
def test_bad_structure_raises(case):
    """Bad structures raise ValueError naming the problem, from descriptors and neighbour_table."""
    atoms, message = BAD_STRUCTURES[case]
    with pytest.raises(ValueError, match=message):
        jaxinfo.descriptors(atoms)
    with pytest.raises(ValueError, match=message):
        neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, 32, 5.0)


def test_bad_structure_in_a_list_names_its_index():
    """In a dataset, the message names the offending structure."""
    good = _water()
    bad, _ = BAD_STRUCTURES["nan"]
    with pytest.raises(ValueError, match=r"structure 2\b.*NaN or inf"):
        jaxinfo.descriptors([good, good, bad])


@pytest.mark.parametrize(
    ("k", "message"),
    [(0, "k must be"), (-3, "k must be"), (2.5, "k must be an integer"), ("8", "k must be")],
)
def test_bad_k_raises(k, message):
    """k < 1 or a non-integer k is refused."""
    with pytest.raises(ValueError, match=message):
        jaxinfo.descriptors(_water(), k=k)
    with pytest.raises(ValueError, match=message):
        neighbour_table(np.zeros((1, 3)), np.eye(3), False, k, 5.0)


@pytest.mark.parametrize("cutoff", [0.0, -1.0, np.nan, np.inf, "far"])
def test_bad_cutoff_raises(cutoff):
    """cutoff <= 0 (or not a finite number) is refused."""
    with pytest.raises(ValueError, match="cutoff must be"):
        jaxinfo.descriptors(_water(), cutoff=cutoff)
    with pytest.raises(ValueError, match="cutoff must be"):
        neighbour_table(np.zeros((1, 3)), np.eye(3), False, 8, cutoff)


def test_empty_list_raises():
    """An empty dataset (list or exhausted iterator) is refused."""
    with pytest.raises(ValueError, match="no structures"):
        jaxinfo.descriptors([])
    with pytest.raises(ValueError, match="no structures"):
        jaxinfo.descriptors(iter([]))


@pytest.mark.parametrize("item", [3, "Cu", np.zeros((2, 3)), None])
def test_non_atoms_item_raises(item):
    """A list item that is not an ase.Atoms is refused, naming its index and type."""
    with pytest.raises(ValueError, match=r"structure 1 is a \w+, expected ase.Atoms"):
        jaxinfo.descriptors([_water(), item])


def test_non_atoms_input_raises():
    """A bare non-Atoms, non-iterable input is refused."""
    with pytest.raises(ValueError, match=r"expected an ase\.Atoms"):
        jaxinfo.descriptors(3.0)


@pytest.mark.parametrize("dtype", [jnp.int32, bool, "complex64"])
def test_non_float_dtype_raises(dtype):
    """dtype must be a real floating type."""
    with pytest.raises(ValueError, match="dtype"):
        jaxinfo.descriptors(_water(), dtype=dtype)


# The smooth variant (forces for biased MD): C∞ across rank swaps, the standard one in the limit.
SWAP_K, SWAP_CUTOFF = 3, 5.0
_SWAP_BASE = np.array([[0, 0, 0], [2.0, 0, 0], [0, 2.6, 0], [0, 0, 3.0], [9, 9, 9]], float)
_SWAP_DIRECTION = np.array([-0.6, -0.5, 0.62]) / np.linalg.norm([-0.6, -0.5, 0.62])
#: Along the path, atom 4 leaves atom 0 at 2.2 + t Å: it passes the neighbour at 2.6 Å (ranks
#: 2 and 3 swap) at t = 0.4 and the one at 3.0 Å (ranks k = 3 and 4 swap) at t = 0.8.
SWAP_TIMES = (0.4, 0.8)


def _along_the_swap_path(smooth):
    """jit ``t -> (descriptors, d descriptors / dt)`` along the path, table updated by top-k."""
    from jaxinfo.descriptor import smooth_structure_descriptors, structure_descriptors
    from jaxinfo.neighbours import neighbour_list

    cell, pbc = np.zeros((3, 3)), [False] * 3
    fns = neighbour_list(2 * SWAP_K if smooth else SWAP_K, SWAP_CUTOFF, skin=2.0)
    start = _SWAP_BASE.copy()
    start[4] = _SWAP_DIRECTION * 2.7
    neighbours = fns.allocate(start, cell, pbc)  # skin 2 Å: valid along the whole path

    def describe(t):
        positions = jnp.asarray(_SWAP_BASE, t.dtype).at[4].set(_SWAP_DIRECTION * (2.2 + t))
        table = fns.update(positions, cell, neighbours).table
        if smooth:
            return smooth_structure_descriptors(positions, cell, table, SWAP_CUTOFF, k=SWAP_K)
        return structure_descriptors(positions, cell, table, SWAP_CUTOFF)

    return jax.jit(lambda t: (describe(t), jax.jacrev(describe)(t)))


def _jumps(along, t, eps):
    """Largest change of the value and of its t-derivative from t - eps to t + eps."""
    (before, slope_before), (after, slope_after) = along(t - eps), along(t + eps)
    return float(jnp.max(jnp.abs(after - before))), float(
        jnp.max(jnp.abs(slope_after - slope_before))
    )


def test_smooth_descriptor_is_continuously_differentiable_across_rank_swaps(dtype):
    # Standard: a kink where two x1 entries swap (slope jump 0.20 1/Å per Å, measured) and a
    # value jump where ranks k and k + 1 swap (0.024 1/Å: x2 takes another neighbour's pairs).
    standard = _along_the_swap_path(smooth=False)
    t_sort, t_rank = (jnp.asarray(t, dtype) for t in SWAP_TIMES)
    assert _jumps(standard, t_sort, 1e-3)[1] > 0.1
    assert _jumps(standard, t_rank, 1e-4)[0] > 0.01
    # Smooth: value and slope both change ∝ eps across each swap (measured 4.3 eps at most),
    # and central finite differences at the swap match the gradient.
    smooth = _along_the_swap_path(smooth=True)
    for t in (t_sort, t_rank):
        wide, narrow = _jumps(smooth, t, 1e-3), _jumps(smooth, t, 1e-4)
        assert wide[0] < 1e-3 and wide[1] < 0.05
        assert narrow[0] < 0.2 * wide[0] and narrow[1] < 0.2 * wide[1]
        # Error ∝ eps² (measured 4e-10 at eps = 1e-5 in float64, 4e-5 at 3e-3 in float32).
        eps = tolerance(dtype, float32=3e-3, float64=1e-5)
        (before, _), (_, slope), (after, _) = smooth(t - eps), smooth(t), smooth(t + eps)
        finite_difference = (after - before) / (2 * eps)
        atol = tolerance(dtype, float32=3e-3, float64=1e-6)
        np.testing.assert_allclose(finite_difference, slope, atol=atol)


def _closed_shell_crystal():
    """fcc Cu with k = 12, rc = 3 Å: the 12 nearest (2.55 Å) all inside, the next beyond rc."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    return atoms, 12, 3.0


def _molecule_environments():
    """A molecule with fewer atoms than k, all within rc - 3 width of each other."""
    return molecule("CH3CH2OH"), 12, 5.0


@pytest.mark.parametrize("case", [_closed_shell_crystal, _molecule_environments])
def test_smooth_descriptor_tends_to_the_standard_one(case, dtype):
    from jaxinfo.descriptor import smooth_structure_descriptors

    atoms, k, cutoff = case()
    pbc = atoms.pbc
    cell = atoms.cell.array if pbc.any() else np.zeros((3, 3))
    standard = jaxinfo.descriptors(atoms, k=k, cutoff=cutoff)
    table = neighbour_table(atoms.positions, cell, pbc, 2 * k, cutoff)
    positions = jnp.asarray(atoms.positions, dtype)

    def smooth(softness, switch_width):
        x = smooth_structure_descriptors(
            positions, jnp.asarray(cell, dtype), table, cutoff, k=k, softness=softness,
            switch_width=switch_width,
        )  # fmt: skip
        assert x.dtype == dtype and x.shape == standard.shape
        return np.max(np.abs(np.asarray(x, np.float64) - standard))

    # Memberships are exact here (the (k+1)-th neighbour is beyond rc, or there is none); the
    # soft sort mixes entries closer than ~softness, and the cutoff switch damps r > rc - width.
    coarse, fine = smooth(0.01, 0.3), smooth(1e-5, 0.01)
    assert fine < tolerance(dtype, float32=2e-5, float64=1e-6)
    assert fine < 0.01 * coarse or coarse < 1e-6


def test_smooth_descriptor_gradients_are_finite_at_ties_and_padding(dtype):
    from jaxinfo.descriptor import smooth_structure_descriptors

    # A perfect crystal (every distance tied many times over) with k = 8 inside its 12-atom
    # shell, and an 24-slot table for atoms with 18 neighbours (6 padded slots each).
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    table = neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, 24, 4.0)
    positions = jnp.asarray(atoms.positions, dtype)
    cell = jnp.asarray(atoms.cell.array, dtype)

    def energy(positions):
        return jnp.sum(smooth_structure_descriptors(positions, cell, table, 4.0, k=8) ** 2)

    gradient = jax.grad(energy)(positions)
    assert np.all(np.isfinite(np.asarray(gradient)))
    # The shell straddling rank k + 1 shares the k memberships: 8/12 each, all atoms alike.
    x = smooth_structure_descriptors(positions, cell, table, 4.0, k=8)
    np.testing.assert_allclose(x, jnp.broadcast_to(x[0], x.shape), atol=1e-6)
    assert float(jnp.max(jnp.abs(gradient))) < 1e-5


def test_soft_sort_is_a_permutation_invariant_sort_in_the_limit(dtype):
    from jaxinfo.descriptor import soft_sort_descending

    values = jnp.asarray([0.3, 0.1, 0.0, 0.2, 0.0, 0.2], dtype)
    result = soft_sort_descending(values, 1e-3)
    np.testing.assert_allclose(result, [0.3, 0.2, 0.2, 0.1, 0.0, 0.0], atol=1e-6)
    shuffled = soft_sort_descending(values[::-1], 1e-3, n_out=4)
    np.testing.assert_allclose(shuffled, result[:4], atol=1e-6)
