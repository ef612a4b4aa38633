"""Bandwidth rules h(V) against the peer's reference values, and the atomic volume."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from hypothesis import given
from hypothesis import strategies as st

import jaxinfo
from jaxinfo.bandwidth import BANDWIDTH_METHODS, atomic_volume, bandwidth_from_volume

volumes = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("method", BANDWIDTH_METHODS)
def test_bandwidth_rule_matches_reference(reference, method):
    """Both rules reproduce the peer's h(V) on its volumes to 1e-12, element by element."""
    rule = reference["bandwidth_rule"]
    expected = np.asarray(rule[method])
    for volume, h in zip(rule["volumes_A3_per_atom"], expected, strict=True):
        value = bandwidth_from_volume(volume, method=method)
        assert isinstance(value, float)
        assert value == pytest.approx(h, rel=1e-12, abs=1e-15)
    # The same values from one array call, with the array's shape.
    array = bandwidth_from_volume(np.asarray(rule["volumes_A3_per_atom"]), method=method)
    np.testing.assert_allclose(array, expected, rtol=1e-12, atol=1e-15)


def test_default_method_is_gaussian():
    """Without a method the gaussian fit is used (Cu, V = 11.76 A^3: h = 0.0621)."""
    assert bandwidth_from_volume(11.76) == bandwidth_from_volume(11.76, method="gaussian")
    assert bandwidth_from_volume(11.76) == pytest.approx(0.0620501137, rel=1e-9)


@pytest.mark.parametrize("method", BANDWIDTH_METHODS)
def test_array_input_keeps_shape_and_matches_scalars(method):
    """A 2-D array of volumes gives an array of the same shape, equal to scalar calls."""
    v = np.array([[5.0, 10.0, 20.0], [11.76, 40.0, 80.0]])
    h = bandwidth_from_volume(v, method=method)
    assert isinstance(h, np.ndarray) and h.shape == v.shape
    expected = [[bandwidth_from_volume(float(a), method=method) for a in row] for row in v]
    np.testing.assert_array_equal(h, expected)
    assert bandwidth_from_volume([10.0, 20.0], method=method).shape == (2,)


@given(volumes)
def test_gaussian_rule_is_bounded_and_decreasing(v):
    """The gaussian fit decreases with V from 0.1016614 towards its floor 0.0119417."""
    h = bandwidth_from_volume(v)
    assert 0.0119417 <= h <= 0.0897141 + 0.0119417
    assert bandwidth_from_volume(v * 1.01) <= h


@given(volumes)
def test_cutoff_rule_is_bounded(v):
    """The cutoff fit lies in [0.016, 0.016 + 0.086164] and is 0.016 where (ln V)^2 >= rc."""
    h = bandwidth_from_volume(v, method="cutoff")
    assert 0.016 <= h <= 0.016 + 0.086164
    if np.log(v) ** 2 >= 11.61172:
        assert h == 0.016


@pytest.mark.parametrize(
    "volume",
    [0.0, -1.0, float("nan"), float("inf"), -np.inf, [10.0, 0.0], np.array([12.0, np.nan])],
    ids=["zero", "negative", "nan", "inf", "-inf", "array with zero", "array with nan"],
)
@pytest.mark.parametrize("method", BANDWIDTH_METHODS)
def test_bad_volume_raises_value_error(volume, method):
    """Volumes that are not finite and > 0 raise a ValueError about the atomic volume."""
    with pytest.raises(ValueError, match="atomic volume must be finite and > 0"):
        bandwidth_from_volume(volume, method=method)


@pytest.mark.parametrize("method", ["Gaussian", "silverman", ""])
def test_unknown_method_raises_value_error(method):
    """An unknown method name raises a ValueError listing the valid ones."""
    with pytest.raises(ValueError, match=r"unknown bandwidth method .*gaussian.*cutoff"):
        bandwidth_from_volume(12.0, method=method)


@pytest.mark.parametrize("a", [3.61, 4.08])
def test_atomic_volume_of_fcc_is_a_cubed_over_four(a):
    """fcc has 4 atoms per cubic cell: V = a^3 / 4 (cubic, primitive and supercells)."""
    expected = a**3 / 4
    assert atomic_volume(bulk("Cu", "fcc", a=a, cubic=True)) == pytest.approx(expected, rel=1e-12)
    assert atomic_volume(bulk("Cu", "fcc", a=a)) == pytest.approx(expected, rel=1e-12)
    supercell = bulk("Cu", "fcc", a=a).repeat((2, 3, 1))
    assert atomic_volume(supercell) == pytest.approx(expected, rel=1e-12)


def test_atomic_volume_ignores_cell_handedness():
    """A left-handed cell (negative determinant) gives the same positive volume."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.set_cell(atoms.cell.array[[1, 0, 2]])
    assert atomic_volume(atoms) == pytest.approx(3.61**3 / 4, rel=1e-12)


def test_bulk_copper_rule_feeds_entropy():
    """atomic_volume and the rule compose: h for Cu (V = 11.76) is the reference 0.0621."""
    h = jaxinfo.bandwidth_from_volume(jaxinfo.atomic_volume(bulk("Cu", "fcc", a=3.61)))
    assert h == pytest.approx(bandwidth_from_volume(3.61**3 / 4), rel=1e-12)
    assert 0.06 < h < 0.064


@pytest.mark.parametrize(
    "pbc", [False, (True, True, False), (True, False, False)], ids=["open", "slab", "wire"]
)
def test_atomic_volume_needs_full_periodicity(pbc):
    """A structure not periodic along all three axes has no atomic volume: ValueError."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.pbc = pbc
    with pytest.raises(ValueError, match="periodic along all three axes"):
        atomic_volume(atoms)


def test_atomic_volume_of_molecule_raises():
    """A molecule (pbc False, no cell) raises ValueError."""
    with pytest.raises(ValueError, match="periodic"):
        atomic_volume(molecule("H2O"))


def test_atomic_volume_of_empty_or_singular_structure_raises():
    """No atoms, or a periodic cell of zero volume, raise ValueError."""
    with pytest.raises(ValueError, match="no atoms"):
        atomic_volume(Atoms(cell=np.eye(3) * 4.0, pbc=True))
    flat = Atoms("Cu", positions=[[0.0, 0.0, 0.0]], cell=[[3.0, 0, 0], [0, 3.0, 0], [0, 0, 0]])
    flat.pbc = True
    with pytest.raises(ValueError, match="zero volume"):
        atomic_volume(flat)
