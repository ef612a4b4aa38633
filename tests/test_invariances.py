"""Symmetries of the descriptor: each atom's row is unchanged by operations that keep its
environment (permutation, rotation, translation, wrapping, another choice of lattice vectors,
replication into a supercell).

Structures are rattled or random so that distances are not tied; rows of atoms whose k-th
neighbour is tied with the (k+1)-th are compared on x1 only (see helpers.boundary_ties).
"""

import numpy as np
import pytest
from helpers import (
    OPEN_KINDS,
    PERIODIC_KINDS,
    assert_rows_close,
    boundary_ties,
    random_rotation,
    seeds,
    structures,
    tolerance,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jaxinfo

K, CUTOFF = 32, 5.0


def tolerances(dtype):
    """(atol on descriptor entries, tie tolerance on distances) for results of ``dtype``.

    float32 rounds positions and distances at ~1e-7 relative, so rows of moved copies agree to
    a few 1e-7 (entries are <~ 1 / Angstrom); 1e-6 leaves margin. A k-th/(k+1)-th neighbour pair
    closer than ~1e-6 Angstrom can swap under float32 rounding, so ties are flagged up to 1e-5.
    """
    return tolerance(dtype, float32=1e-6, float64=1e-10), tolerance(dtype, 1e-5, 1e-8)


UNIMODULAR = [
    np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]),
    np.array([[1, 0, 0], [1, 1, 0], [-1, 2, 1]]),
    np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]]),  # det -1: relabelled, left-handed
    np.array([[2, 1, 1], [1, 1, 0], [0, 0, -1]]),  # det -1
    np.array([[1, -2, 0], [0, 1, 0], [3, -6, 1]]),  # strongly skewed
]


def describe(atoms):
    return jaxinfo.descriptors(atoms, k=K, cutoff=CUTOFF)


def test_unimodular_matrices_are_unimodular():
    """Guard for the table above: integer matrices of determinant +-1."""
    for matrix in UNIMODULAR:
        assert abs(round(np.linalg.det(matrix))) == 1


@settings(max_examples=15)
@given(atoms=structures(), seed=seeds)
def test_permuting_atoms_permutes_rows(dtype, atoms, seed):
    """Reordering the atoms reorders the rows and changes nothing else."""
    order = np.random.default_rng(seed).permutation(len(atoms))
    assume(len(atoms) == 1 or not np.all(order == np.arange(len(atoms))))
    x = describe(atoms)
    atol, tie_tol = tolerances(dtype)
    tied = boundary_ties(atoms, K, CUTOFF, tol=tie_tol)
    assert_rows_close(describe(atoms[order]), x[order], K, tied[order], atol=atol)


@settings(max_examples=15)
@given(atoms=structures(), seed=seeds, proper=st.booleans())
def test_rotation_and_reflection(dtype, atoms, seed, proper):
    """Rotating (or reflecting) positions and cell together leaves every row unchanged."""
    rotation = random_rotation(np.random.default_rng(seed), proper=proper)
    moved = atoms.copy()
    moved.positions = atoms.positions @ rotation.T
    moved.cell = atoms.cell.array @ rotation.T
    atol, tie_tol = tolerances(dtype)
    tied = boundary_ties(atoms, K, CUTOFF, tol=tie_tol)
    assert_rows_close(describe(moved), describe(atoms), K, tied, atol=atol)


@settings(max_examples=15)
@given(atoms=structures(), shift=st.lists(st.floats(-20, 20), min_size=3, max_size=3))
def test_translation(dtype, atoms, shift):
    """Translating all atoms (cell fixed) leaves every row unchanged."""
    moved = atoms.copy()
    moved.positions = atoms.positions + np.asarray(shift)
    atol, tie_tol = tolerances(dtype)
    tied = boundary_ties(atoms, K, CUTOFF, tol=tie_tol)
    assert_rows_close(describe(moved), describe(atoms), K, tied, atol=atol)


@settings(max_examples=15)
@given(
    atoms=structures(kinds=PERIODIC_KINDS),
    pbc=st.sampled_from([(True, True, True), (True, True, False), (False, True, False)]),
    seed=seeds,
)
def test_wrapping_and_lattice_translations(dtype, atoms, pbc, seed):
    """Wrapping into the cell, or moving atoms by lattice vectors along periodic axes."""
    atoms = atoms.copy()
    atoms.pbc = pbc
    x = describe(atoms)
    atol, tie_tol = tolerances(dtype)
    tied = boundary_ties(atoms, K, CUTOFF, tol=tie_tol)

    wrapped = atoms.copy()
    wrapped.wrap()
    assert_rows_close(describe(wrapped), x, K, tied, atol=atol, what="wrap")

    rng = np.random.default_rng(seed)
    jumps = rng.integers(-4, 5, (len(atoms), 3)) * np.asarray(pbc)
    assume(np.any(jumps != 0))
    scattered = atoms.copy()
    scattered.positions = atoms.positions + jumps @ atoms.cell.array
    assert_rows_close(describe(scattered), x, K, tied, atol=atol, what="lattice translations")


@pytest.mark.parametrize("matrix_index", range(len(UNIMODULAR)))
@settings(max_examples=6)
@given(atoms=structures(kinds=PERIODIC_KINDS))
def test_other_lattice_vectors_same_crystal(dtype, atoms, matrix_index):
    """cell -> M @ cell with integer unimodular M describes the same crystal: rows unchanged."""
    matrix = UNIMODULAR[matrix_index]
    other = atoms.copy()
    other.set_cell(matrix @ atoms.cell.array, scale_atoms=False)
    atol, tie_tol = tolerances(dtype)
    # Rounding the input cell to the working precision moves the crystal by ~eps times the
    # longest lattice vector: a skewed basis (up to 6x longer vectors here) represents it less
    # exactly, so the tolerance grows with the ratio of the longest vectors.
    lengths = [np.linalg.norm(c, axis=1).max() for c in (other.cell.array, atoms.cell.array)]
    atol *= max(1.0, lengths[0] / lengths[1])
    tied = boundary_ties(atoms, K, CUTOFF, tol=tie_tol)
    x = describe(atoms)
    assert_rows_close(describe(other), x, K, tied, atol=atol)
    other.wrap()
    assert_rows_close(describe(other), x, K, tied, atol=atol, what="wrapped")


@settings(max_examples=12)
@given(atoms=structures(kinds=PERIODIC_KINDS))
def test_supercell_rows_repeat_the_primitive_rows(dtype, atoms):
    """atoms.repeat((2, 1, 3)): every copy of an atom has the original atom's row."""
    assume(len(atoms) <= 4)
    super_ = atoms.repeat((2, 1, 3))
    x = describe(atoms)
    atol, tie_tol = tolerances(dtype)
    tied = boundary_ties(atoms, K, CUTOFF, tol=tie_tol)
    copies = describe(super_).reshape(6, len(atoms), -1)  # ase repeats whole blocks of atoms
    for copy in copies:
        assert_rows_close(copy, x, K, tied, atol=atol)


@settings(max_examples=10)
@given(atoms=structures(kinds=OPEN_KINDS), seed=seeds)
def test_open_structure_cell_is_irrelevant(atoms, seed):
    """With pbc False, replacing the cell by any other leaves the rows unchanged."""
    other = atoms.copy()
    other.cell = np.random.default_rng(seed).normal(size=(3, 3)) * 3
    np.testing.assert_array_equal(describe(other), describe(atoms))
