"""Molecular dynamics with a δH bias: plain NVE conserves energy, the bias acts, runs repeat."""

import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk

import jaxinfo
from jaxinfo.biased_md import DeltaEntropyBias, _bias_energy, run_md
from jaxinfo.datasets import load_example
from jaxinfo.neighbours import neighbour_table
from jaxinfo.potentials import SuttonChen

POTENTIAL = SuttonChen()
# Small descriptors keep compilation short; the physics of the test does not depend on them.
BIAS = DeltaEntropyBias(strength=1.0, deposit_every=10, k=8, cutoff=4.0)


@pytest.fixture(scope="module")
def crystal():
    return load_example("bulk_300K")[0]  # 32 Cu atoms


def test_nve_without_bias_conserves_energy(crystal):
    result = run_md(crystal, POTENTIAL, n_steps=150, timestep=2.0, temperature=600.0)
    total = result.total_energy
    n_atoms = len(crystal)
    assert total.shape == (151,) and np.all(result.bias_energy == 0)
    # Velocity Verlet at 2 fs: the total energy stays within 1e-4 eV/atom of its start
    # (measured ~2e-5 eV/atom), while the kinetic energy moves by far more.
    assert np.max(np.abs(total - total[0])) / n_atoms < 1e-4
    assert np.ptp(result.kinetic_energy) / n_atoms > 1e-2
    assert result.energy_evaluations >= 151
    assert len(result.frames) == 16 and result.frames[-1].info["step"] == 150


def _biased(crystal, seed, bias=BIAS):
    return run_md(
        crystal, POTENTIAL, n_steps=30, timestep=4.0, temperature=900.0, friction=0.02,
        bias=bias, seed=seed,
    )  # fmt: skip


def test_biased_run_is_deterministic_and_the_bias_acts(crystal):
    first = _biased(crystal, seed=3)
    second = _biased(crystal, seed=3)
    np.testing.assert_array_equal(first.frames[-1].positions, second.frames[-1].positions)
    np.testing.assert_array_equal(first.bias_energy, second.bias_energy)
    assert first.deposit_steps == [0, 10, 20]
    assert first.visited.shape == (3 * len(crystal), 2 * BIAS.k - 1)
    assert np.any(first.bias_energy != 0)
    # Same seed, same Langevin noise, no bias: a different trajectory.
    plain = _biased(crystal, seed=3, bias=None)
    difference = np.abs(plain.frames[-1].positions - first.frames[-1].positions).max()
    assert difference > 1e-3
    other = _biased(crystal, seed=4, bias=None)
    assert not np.array_equal(other.frames[-1].positions, plain.frames[-1].positions)


@pytest.mark.parametrize("kind", ["delta", "hills"])
def test_bias_energy_formulas(kind):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.05, seed=0)
    other = atoms.copy()
    other.rattle(0.05, seed=1)
    bias = DeltaEntropyBias(strength=0.7, kind=kind, saturation=4.0, k=8, cutoff=4.0)
    visited = jaxinfo.descriptors(other, k=8, cutoff=4.0)
    x = jaxinfo.descriptors(atoms, k=8, cutoff=4.0)
    table = neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, 8, 4.0)
    value = _bias_energy(
        jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array), table, visited,
        jnp.zeros(visited.shape[0]), bias,
    )  # fmt: skip
    delta = np.asarray(jaxinfo.delta_entropy(x, visited, h=bias.h))
    if kind == "delta":
        expected = -0.7 * np.mean(4.0 * np.tanh(delta / 4.0))
    else:
        expected = 0.7 * np.sum(np.exp(-delta))
    assert float(value) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(timestep=0.0), "timestep"),
        (dict(temperature=-5.0), "temperature"),
        (dict(friction=0.0), "friction"),
        (dict(n_steps=0), "n_steps"),
        (dict(record_every=15), "record_every"),
        (dict(bias=DeltaEntropyBias(1.0, deposit_every=15)), "deposit_every"),
        (dict(bias="strong"), "bias"),
    ],
)
def test_md_bad_input(crystal, kwargs, match):
    arguments = dict(n_steps=10) | kwargs
    with pytest.raises(ValueError, match=match):
        run_md(crystal, POTENTIAL, **arguments)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DeltaEntropyBias(0.0),
        lambda: DeltaEntropyBias(1.0, kind="wells"),
        lambda: DeltaEntropyBias(1.0, deposit_every=0),
        lambda: DeltaEntropyBias(1.0, saturation=-1.0),
        lambda: DeltaEntropyBias(1.0, h=[0.01, 0.02]),
    ],
)
def test_bad_bias_settings(make):
    with pytest.raises(ValueError):
        make()
