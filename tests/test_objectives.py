"""Information objectives and the growing fixed-capacity reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from helpers import tolerance

import jaxinfo
from jaxinfo.neighbours import neighbour_table
from jaxinfo.objectives import (
    information,
    reference_add,
    reference_init,
    structure_information,
)

H = 0.05


def _descriptors(seed, k=8, cutoff=4.0):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.1, seed=seed)
    return atoms, np.asarray(jaxinfo.descriptors(atoms, k=k, cutoff=cutoff))


def test_growing_reference_matches_the_estimators(dtype):
    _, a = _descriptors(0)
    _, b = _descriptors(1)
    _, c = _descriptors(2)
    reference = reference_init(a, capacity=10, h=H)
    reference = jax.jit(reference_add, static_argnames="h")(reference, b, h=H)
    tol = tolerance(dtype, float32=2e-5, float64=1e-10)
    assert int(reference.count) == 8 and not reference.overflow
    assert np.all(np.isneginf(np.asarray(reference.log_weights)[8:]))
    union = np.concatenate([a, b])
    delta = np.asarray(jaxinfo.delta_entropy(c, union, h=H))
    assert float(information(c, reference, H, "mean")) == pytest.approx(delta.mean(), abs=tol)
    assert float(information(c, reference, H, "max")) == pytest.approx(delta.max(), abs=tol)
    saturated = float(information(c, reference, H, "mean", saturation=2.0))
    assert saturated == pytest.approx(np.mean(2.0 * np.tanh(delta / 2.0)), abs=tol)
    expected = float(jaxinfo.entropy(np.concatenate([union, c]), h=H))
    assert float(information(c, reference, H, "entropy")) == pytest.approx(expected, abs=tol)
    # No room for four more rows: unchanged, overflow set (as jax-md's neighbour lists).
    full = reference_add(reference, c, H)
    assert bool(full.overflow) and int(full.count) == 8
    np.testing.assert_array_equal(np.asarray(full.x), np.asarray(reference.x))


def test_structure_information_is_differentiable_in_positions_and_cell():
    atoms, x = _descriptors(3)
    reference = reference_init(x + 0.01, capacity=8, h=H)
    table = neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, 8, 4.0)
    positions, cell = jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array)

    def objective(positions, cell):
        return structure_information(positions, cell, table, reference, H, cutoff=4.0)

    value = objective(positions, cell)
    expected = np.mean(np.asarray(jaxinfo.delta_entropy(x, np.asarray(reference.x)[:4], h=H)))
    assert float(value) == pytest.approx(expected, rel=1e-4)
    g_positions, g_cell = jax.grad(objective, argnums=(0, 1))(positions, cell)
    assert g_positions.shape == (4, 3) and g_cell.shape == (3, 3)
    assert np.all(np.isfinite(g_positions)) and np.any(np.asarray(g_positions) != 0)
