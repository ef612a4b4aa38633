"""Pure-JAX potentials: forces against finite differences, dimer minima, Sutton–Chen Cu lattice
energies, the smooth cutoff, and loud neighbour-table overflow."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from jaxinfo.neighbours import neighbour_list
from jaxinfo.potentials import (
    EnergyFunction,
    LennardJones,
    Morse,
    SuttonChen,
    as_potential,
    energy_and_forces,
    minimum_distance,
)

POTENTIALS = [LennardJones(), Morse(), SuttonChen()]


def _dimer(r):
    return Atoms("Cu2", positions=[[0, 0, 0], [r, 0, 0]], cell=np.eye(3) * 20.0, pbc=False)


def _rattled_cell():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.array([[1.02, 0.01, 0], [0, 0.98, 0.02], [0, 0, 1.01]]),
                   scale_atoms=True)  # fmt: skip
    atoms.rattle(0.1, seed=3)
    return atoms


def _candidates(potential, atoms):
    """The table the potential's energy takes: every neighbour within cutoff + skin."""
    fns = potential.neighbour_list()
    return fns.allocate(atoms.positions, atoms.cell.array, atoms.pbc).candidates


@pytest.mark.float64_only  # central differences at 1e-5 Å need float64
@pytest.mark.parametrize("potential", POTENTIALS, ids=lambda p: type(p).__name__)
def test_forces_are_minus_gradient(potential):
    atoms = _rattled_cell()
    table = _candidates(potential, atoms)
    cell = jnp.asarray(atoms.cell.array)
    energy = jax.jit(lambda p: potential.energy(p, cell, table))
    _, forces = energy_and_forces(potential, atoms)
    step = 1e-5
    numeric = np.zeros_like(forces)
    for index in np.ndindex(forces.shape):
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = -(float(energy(plus)) - float(energy(minus))) / (2 * step)
    np.testing.assert_allclose(forces, numeric, atol=1e-6, rtol=1e-6)
    # Newton's third law: no net force on a periodic cell.
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-9)


@pytest.mark.float64_only  # the minimum to 1e-9
@pytest.mark.parametrize(
    ("potential", "r_min", "depth"),
    [
        (LennardJones(), 2 ** (1 / 6) * 2.338, 0.4093),
        (Morse(), 2.866, 0.3429),
    ],
    ids=["lj", "morse"],
)
def test_pair_minimum_at_the_right_distance(potential, r_min, depth):
    energy, forces = energy_and_forces(potential, _dimer(r_min))
    assert energy == pytest.approx(-depth, rel=1e-9)
    np.testing.assert_allclose(forces, 0.0, atol=1e-9)
    for r in (r_min - 0.05, r_min + 0.05):
        assert energy_and_forces(potential, _dimer(r))[0] > energy


@pytest.mark.parametrize("potential", POTENTIALS, ids=lambda p: type(p).__name__)
def test_smooth_cutoff(potential):
    # Energy and force go to zero continuously at the cutoff; nothing beyond it.
    near, f_near = energy_and_forces(potential, _dimer(potential.cutoff - 1e-5))
    beyond, f_beyond = energy_and_forces(potential, _dimer(potential.cutoff + 0.1))
    assert abs(near) < 1e-7 and np.abs(f_near).max() < 1e-4
    assert beyond == 0.0 and np.abs(f_beyond).max() == 0.0


def test_sutton_chen_cu_lattice():
    sc = SuttonChen()
    lattice = np.array([3.2, 3.5, 3.58, 3.61, 3.64, 3.7, 4.2])
    per_atom = np.array(
        [energy_and_forces(sc, bulk("Cu", "fcc", a=a, cubic=True))[0] / 4 for a in lattice]
    )
    # fcc minimum at the fitted lattice constant; cohesive energy 3.39 eV/atom with the switch
    # (3.50 eV/atom untruncated; experiment 3.49 eV/atom).
    assert lattice[np.argmin(per_atom)] == 3.61
    assert per_atom[3] == pytest.approx(-3.389, abs=2e-3)
    # Strong compression or expansion costs a lot.
    assert per_atom[0] > per_atom[3] + 0.3 and per_atom[-1] > per_atom[3] + 0.2
    # fcc beats bcc and simple cubic at the same density.
    a_bcc, a_sc = 3.61 / 2 ** (1 / 3), 3.61 / 4 ** (1 / 3)
    bcc = energy_and_forces(sc, bulk("Cu", "bcc", a=a_bcc, cubic=True))[0] / 2
    simple = energy_and_forces(sc, bulk("Cu", "sc", a=a_sc))[0]
    assert per_atom[3] < bcc < 0 and per_atom[3] < simple


def test_dense_cells_keep_every_neighbour():
    # Compressed fcc Cu has 200+ neighbours within 6.5 Å: the table is sized from the count
    # found, so the energy equals one computed from a table with room to spare.
    atoms = bulk("Cu", "fcc", a=3.1, cubic=True)
    potential = SuttonChen()
    energy, _ = energy_and_forces(potential, atoms)
    roomy = neighbour_list(1, potential.cutoff, skin=potential.skin, capacity=600)
    table = roomy.allocate(atoms.positions, atoms.cell.array, atoms.pbc).candidates
    assert _candidates(potential, atoms).k < 600
    cell = jnp.asarray(atoms.cell.array)
    expected = float(potential.energy(jnp.asarray(atoms.positions), cell, table))
    assert energy == pytest.approx(expected, rel=1e-5)  # dropped neighbours: > 1e-2


def test_energy_function_wraps_a_callable():
    def harmonic(positions, cell):
        return 0.5 * jnp.sum((positions - jnp.mean(positions, axis=0)) ** 2)

    atoms = _rattled_cell()
    energy, forces = energy_and_forces(harmonic, atoms)
    centred = atoms.positions - atoms.positions.mean(axis=0)
    assert energy == pytest.approx(0.5 * np.sum(centred**2))
    np.testing.assert_allclose(forces, -centred, atol=1e-12)
    wrapped = as_potential(harmonic)
    assert isinstance(wrapped, EnergyFunction) and wrapped.neighbour_list() is None
    assert as_potential(wrapped) is wrapped


def test_minimum_distance():
    atoms = _dimer(2.3)
    table = _candidates(SuttonChen(), atoms)
    assert float(minimum_distance(atoms.positions, atoms.cell.array, table)) == pytest.approx(2.3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LennardJones(epsilon=-1.0),
        lambda: Morse(alpha=0.0),
        lambda: SuttonChen(onset=6.0, cutoff=6.0),
        lambda: LennardJones(cutoff=-1.0),
        lambda: SuttonChen(skin=-0.1),
        lambda: EnergyFunction(None),
        lambda: as_potential(3.0),
    ],
)
def test_bad_parameters_raise(make):
    with pytest.raises(ValueError):
        make()
