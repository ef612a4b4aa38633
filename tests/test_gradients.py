"""Differentiability of the descriptor: gradients vs. finite differences, no NaN at the edge
cases (padded slots, isolated atoms, the cutoff), and jit / vmap of structure_descriptors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from helpers import build_structure, random_cell, random_positions_in_cell, rattle, tolerance

import jaxinfo
from jaxinfo.descriptor import structure_descriptors
from jaxinfo.neighbours import NeighbourTable, neighbour_table, pad_table

K, CUTOFF = 16, 4.0


def table_of(atoms, k=K, cutoff=CUTOFF):
    return neighbour_table(atoms.positions, atoms.cell.array, atoms.pbc, k, cutoff)


def _loss(positions, cell, table):
    """A scalar function of the descriptor: weighted sum of its values and their squares."""
    x = structure_descriptors(positions, cell, table, CUTOFF)
    phase = jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)
    return jnp.sum((1.0 + 0.5 * jnp.sin(phase)) * x**2) + jnp.sum(jnp.cos(phase) * x)


# The table is an argument (a pytree), so structures of equal shape share one compilation.
loss = jax.jit(_loss)
grad_loss = jax.jit(jax.grad(_loss, argnums=(0, 1)))


def central_differences(function, x, step=1e-5):
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (float(function(plus)) - float(function(minus))) / (2 * step)
    return grad


def _strained_fcc():
    """Rattled fcc with a strained cell: |a1| != |a2| != |a3| breaks the exact ties between
    self images along different axes (at a tie, the sorted x1 has no derivative w.r.t. cell)."""
    rng = np.random.default_rng(1)
    atoms = rattle(bulk("Cu", "fcc", a=3.61, cubic=True), 0.08, rng)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.03, (3, 3))), scale_atoms=True)
    return atoms


def _slab():
    rng = np.random.default_rng(5)
    cell = random_cell(rng, volume=45.0, shear=0.8)
    return random_positions_in_cell(rng, cell, [True, True, False], 3, min_dist=1.2)


GRADIENT_CASES = {
    "fcc-strained": _strained_fcc,
    "triclinic": lambda: build_structure("triclinic", 21),
    "slab": _slab,
    "molecule": lambda: rattle(molecule("CH3CH2OH"), 0.03, np.random.default_rng(2)),
}


@pytest.mark.float64_only  # float32 cannot resolve differences at step 1e-5; see below
@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradient_matches_finite_differences(case):
    """jax.grad w.r.t. positions and cell equals central differences (step 1e-5, rtol 1e-5)."""
    atoms = GRADIENT_CASES[case]()
    table = table_of(atoms)
    positions, cell = atoms.positions.copy(), atoms.cell.array.copy()
    grad_positions, grad_cell = grad_loss(positions, cell, table)
    fd_positions = central_differences(lambda p: loss(p, cell, table), positions)
    fd_cell = central_differences(lambda c: loss(positions, c, table), cell)
    scale = np.abs(fd_positions).max()
    assert scale > 1e-3, "the loss must depend on the positions"
    np.testing.assert_allclose(grad_positions, fd_positions, rtol=1e-5, atol=1e-7 * scale)
    np.testing.assert_allclose(grad_cell, fd_cell, rtol=1e-5, atol=1e-7 * scale)
    if atoms.pbc.any():
        assert np.abs(grad_cell).max() > 1e-3, "periodic images make the loss depend on the cell"
    else:
        np.testing.assert_array_equal(grad_cell, 0.0)


@pytest.mark.float32_only
@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_float32_gradient_matches_float64(case):
    """float32 jax.grad w.r.t. positions and cell equals the float64 gradient (itself checked
    against finite differences above) to 1e-5 of its largest entry (measured: <~ 1e-6)."""
    atoms = GRADIENT_CASES[case]()
    table = table_of(atoms)
    positions, cell = atoms.positions.copy(), atoms.cell.array.copy()
    grads = grad_loss(positions, cell, table)
    with jax.enable_x64(True):
        expected = [np.asarray(g) for g in grad_loss(positions, cell, table)]
    scale = np.abs(expected[0]).max()
    assert scale > 1e-3, "the loss must depend on the positions"
    for grad, reference in zip(grads, expected, strict=True):
        assert grad.dtype == np.float32 and reference.dtype == np.float64
        np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-5 * scale)
    if atoms.pbc.any():
        assert np.abs(grads[1]).max() > 1e-3, "periodic images make the loss depend on the cell"
    else:
        np.testing.assert_array_equal(grads[1], 0.0)


def assert_finite_gradients(atoms, table):
    grads = grad_loss(atoms.positions, atoms.cell.array, table)
    for grad in grads:
        assert np.all(np.isfinite(grad)), grad
    return grads


def test_finite_gradients_molecule_fewer_atoms_than_k(dtype):
    """Water with k = 16: 14 padded slots per atom; atom 0's padded slots are zero vectors."""
    atoms = molecule("H2O")
    table = table_of(atoms)
    assert not table.mask[0, 2:].any() and np.all(table.index[0, 2:] == 0)
    grad_positions, _ = assert_finite_gradients(atoms, table)
    # Translation invariance: the forces on a free molecule sum to zero (to rounding).
    scale = np.abs(grad_positions).max()
    assert scale > 1e-3
    atol = tolerance(dtype, float32=1e-6, float64=1e-12) * scale
    np.testing.assert_allclose(grad_positions.sum(axis=0), 0.0, atol=atol)


def test_finite_gradients_isolated_atom():
    """An atom with no neighbour at all: finite gradients, and exactly zero on that atom."""
    atoms = molecule("H2O") + Atoms("He", positions=[[30.0, 0.0, 0.0]])
    table = table_of(atoms)
    assert not table.mask[3].any()
    grad_positions, _ = assert_finite_gradients(atoms, table)
    np.testing.assert_array_equal(grad_positions[3], 0.0)
    assert np.abs(grad_positions[:3]).max() > 0


@pytest.mark.parametrize("gap", [0.0, 1e-12, 1e-7])
def test_finite_gradients_neighbour_at_the_cutoff(gap):
    """A neighbour in the table at exactly (or just inside) the cutoff: finite gradients."""
    positions = jnp.array([[0.0, 0.0, 0.0], [1.1, 0.3, 0.0], [CUTOFF - gap, 0.0, 0.0]])
    # Hand-made table: atom 0 lists atoms 1 and 2, the latter at distance CUTOFF - gap.
    table = NeighbourTable(
        index=np.array([[1, 2, 0], [0, 0, 0], [0, 0, 0]], dtype=np.int32),
        shift=np.zeros((3, 3, 3), dtype=np.int32),
        mask=np.array([[True, True, False], [False] * 3, [False] * 3]),
    )

    grad, _ = grad_loss(positions, jnp.eye(3), table)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad[1]).max() > 1e-3
    if gap == 0.0:
        np.testing.assert_array_equal(grad[2], 0.0)
    # x1 = w(r)/r is C1 at rc (w and w' vanish there): the far atom feels almost no force from
    # x1. (x2 is not: sqrt(w) = 1 - (r/rc)^2 vanishes linearly, so the full gradient on the far
    # atom jumps at rc, a property of the QUESTS descriptor itself.)
    x1_grad = _x1_grad(positions, table)
    assert np.all(np.isfinite(x1_grad))
    assert np.abs(x1_grad[2]).max() <= 1e-6


@jax.jit
@jax.grad
def _x1_grad(positions, table):
    x = structure_descriptors(positions, jnp.eye(3), table, CUTOFF)
    return jnp.sum(x[:, : table.k] ** 2)


def test_finite_gradients_neighbour_beyond_cutoff_in_table():
    """A stale table slot that has moved beyond the cutoff gives zero weight and finite grads."""
    vectors = jnp.array([[1.0, 0.2, 0.0], [CUTOFF + 0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = jnp.array([True, True, False])

    descriptor = jax.jit(jaxinfo.environment_descriptor)
    value = descriptor(vectors, mask, CUTOFF)
    alone = descriptor(vectors, jnp.array([True, False, False]), CUTOFF)
    np.testing.assert_allclose(value, alone, atol=1e-15)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(descriptor(v, mask, CUTOFF) ** 2)))(vectors)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[1:], 0.0)


def test_finite_gradients_padded_atoms(dtype):
    """Padded rows (pad_table, padded atoms piled up at the origin) give zero rows and finite
    gradients, and leave the real rows and their gradients unchanged."""
    atoms = rattle(bulk("Cu", "fcc", a=3.61, cubic=True), 0.05, np.random.default_rng(4))
    table = table_of(atoms)
    padded = pad_table(table, 7)
    positions = np.concatenate([atoms.positions, np.zeros((3, 3))])
    cell = atoms.cell.array
    x = jax.jit(structure_descriptors, static_argnames="cutoff")(
        positions, cell, padded, cutoff=CUTOFF
    )
    np.testing.assert_array_equal(x[4:], 0.0)
    # Against the same table unpadded (another search may break the +v/-v image ties of the
    # k-th slot differently, which changes x2).
    alone = structure_descriptors(atoms.positions, cell, table, cutoff=CUTOFF)
    np.testing.assert_allclose(x[:4], alone, atol=tolerance(dtype, float32=1e-7, float64=1e-13))
    grad_p, grad_c = grad_loss(positions, cell, padded)
    assert np.all(np.isfinite(grad_p)) and np.all(np.isfinite(grad_c))
    np.testing.assert_array_equal(grad_p[4:], 0.0)
    assert np.abs(grad_p[:4]).max() > 1e-3


def test_jit_with_table_argument_matches_public_function(dtype):
    """jit(structure_descriptors) with the table as a traced pytree argument equals
    jaxinfo.descriptors (which goes through the padded, batched path; in float32 the two
    round differently, entries <~ 1 agree to a few 1e-7)."""
    atoms = build_structure("triclinic", 8)
    table = table_of(atoms)
    jitted = jax.jit(structure_descriptors, static_argnames=("cutoff", "chunk_size"))
    x = jitted(atoms.positions, atoms.cell.array, table, cutoff=CUTOFF)
    expected = jaxinfo.descriptors(atoms, k=K, cutoff=CUTOFF)
    assert x.dtype == expected.dtype == dtype
    np.testing.assert_allclose(
        x, expected, rtol=0, atol=tolerance(dtype, float32=1e-6, float64=1e-13)
    )


def test_chunk_size_does_not_change_results(dtype):
    """Processing atoms a few at a time (with a remainder) gives the same rows (in float32 up to
    a unit in the last place: XLA may fuse the two programs differently)."""
    atoms = build_structure("triclinic", 21)
    table = table_of(atoms)
    chunk = next(c for c in (3, 4, 5) if len(atoms) % c)
    run = jax.jit(structure_descriptors, static_argnames=("cutoff", "chunk_size"))
    full = run(atoms.positions, atoms.cell.array, table, cutoff=CUTOFF)
    chunked = run(atoms.positions, atoms.cell.array, table, cutoff=CUTOFF, chunk_size=chunk)
    np.testing.assert_allclose(
        chunked, full, rtol=0, atol=tolerance(dtype, float32=1e-7, float64=1e-15)
    )


def test_vmap_over_positions_and_cells_with_one_table(dtype):
    """vmap over a stack of displaced positions and strained cells sharing one table, for the
    descriptor and for its gradient."""
    atoms = rattle(bulk("Cu", "fcc", a=3.61, cubic=True), 0.05, np.random.default_rng(6))
    table = table_of(atoms)
    rng = np.random.default_rng(7)
    stack = atoms.positions + rng.normal(0, 0.02, (5, len(atoms), 3))
    cells = atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.01, (5, 3, 3)))
    single = jax.jit(structure_descriptors, static_argnames=("cutoff", "chunk_size"))
    batched = jax.jit(
        jax.vmap(lambda p, c, t: structure_descriptors(p, c, t, CUTOFF), in_axes=(0, 0, None))
    )
    out = batched(stack, cells, table)
    assert out.shape == (5, len(atoms), 2 * K - 1)
    # float32: the batched and single programs may round differently by a few units in the
    # last place (entries < 1, gradient entries ~1).
    atol = tolerance(dtype, float32=1e-7, float64=1e-14)
    rtol = tolerance(dtype, float32=1e-5, float64=1e-12)
    for b in range(5):
        expected = single(stack[b], cells[b], table, cutoff=CUTOFF)
        np.testing.assert_allclose(out[b], expected, rtol=0, atol=atol)
    assert np.abs(out[0] - out[1]).max() > 1e-4, "the displaced copies must differ"

    grads_p, grads_c = jax.jit(jax.vmap(grad_loss, in_axes=(0, 0, None)))(stack, cells, table)
    for b in range(5):
        ref_p, ref_c = grad_loss(stack[b], cells[b], table)
        np.testing.assert_allclose(grads_p[b], ref_p, rtol=rtol, atol=1e-2 * rtol)
        np.testing.assert_allclose(grads_c[b], ref_c, rtol=rtol, atol=1e-2 * rtol)
