"""Dataset generation by information gradient ascent and by Metropolis on the same objective."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ase import units
from ase.build import bulk
from helpers import count_compilations, tolerance

import jaxinfo
from jaxinfo.datasets import load_example
from jaxinfo.generation import GenerationObjective, generate, gradient_ascent, metropolis
from jaxinfo.objectives import reference_init
from jaxinfo.potentials import SuttonChen

KT = units.kB * 600.0  # eV
POTENTIAL = SuttonChen()
# Small descriptors where their values do not matter: they compile several times faster.
SMALL_K, SMALL_CUTOFF = 8, 4.0


@pytest.fixture(scope="module")
def seed_frames():
    return load_example("bulk_300K")[:2]


_RUNS = {}


@pytest.fixture
def gradient_run(seed_frames, precision):
    """One run per precision (a module-scoped fixture would serve the other precision's run)."""
    if precision not in _RUNS:
        steps = gradient_ascent(GenerationObjective(POTENTIAL, KT))  # default k, cutoff
        _RUNS[precision] = generate(seed_frames[:1], steps, n_steps=24, sample_every=8)
    return _RUNS[precision]


def test_gradient_ascent_raises_the_objective(gradient_run):
    objective = gradient_run.objective
    assert objective.shape == (25,)
    assert objective[-1] > objective[0] + 1.0
    half = objective.size // 2
    assert objective[half:].mean() > objective[:half].mean()
    # Steady increase: most steps go up (table rebuilds may cause small jumps).
    assert np.mean(np.diff(objective) > 0) > 0.8


def test_gradient_run_keeps_energy_bounded_and_atoms_apart(gradient_run, seed_frames):
    energy = gradient_run.energy
    n_atoms = len(seed_frames[0])
    assert np.all(np.isfinite(energy))
    # The physical term keeps the structure bound: within 0.2 eV/atom of the start.
    assert np.max(np.abs(energy - energy[0])) < 0.2 * n_atoms
    assert gradient_run.min_distance_overall >= gradient_run.min_distance_limit == 1.5
    assert len(gradient_run.frames) == 3
    for frame in gradient_run.frames:
        assert frame.info["method"] == "gradient"
        assert frame.get_all_distances(mic=True)[np.triu_indices(n_atoms, 1)].min() >= 1.5
    assert gradient_run.total_energy_evaluations == 25
    np.testing.assert_array_equal(gradient_run.frame_energy_evaluations, [9, 17, 25])


def test_information_term_matches_the_estimators(gradient_run, seed_frames, dtype):
    # Step 0 evaluates the seed itself against the reference (= the seed).
    x = jaxinfo.descriptors(seed_frames[:1])
    delta = jaxinfo.delta_entropy(x, x)
    expected = float(jnp.mean(10.0 * jnp.tanh(delta / 10.0)))  # default saturation: 10 nats
    assert gradient_run.information[0] == pytest.approx(expected, abs=tolerance(dtype, 1e-5, 1e-8))


def test_entropy_objective_of_the_growing_dataset(seed_frames, dtype):
    objective = GenerationObjective(
        POTENTIAL, KT, information="entropy", k=SMALL_K, cutoff=SMALL_CUTOFF
    )
    steps = gradient_ascent(objective, grow_every=2)
    result = generate(seed_frames[:1], steps, n_steps=4, sample_every=2)
    x = jaxinfo.descriptors(seed_frames[:1], k=SMALL_K, cutoff=SMALL_CUTOFF)
    # At step 0 the dataset is the reference plus an identical copy of it.
    expected = float(jaxinfo.entropy(np.concatenate([x, x])))
    assert result.information[0] == pytest.approx(expected, abs=tolerance(dtype, 1e-5, 1e-8))
    # After the first emission the reference holds the emitted frame as well.
    frames = [seed_frames[0], result.frames[0]]
    x_new = jaxinfo.descriptors(frames, k=SMALL_K, cutoff=SMALL_CUTOFF)
    assert len(result.frames) == 2
    # Step 3 sees reference + frame 0 + the (moved) current structure: H <= log N.
    assert result.information[3] <= np.log(x_new.shape[0] + 32) + 1e-9


def test_metropolis_is_deterministic_for_a_seed(seed_frames):
    objective = GenerationObjective(POTENTIAL, KT, k=SMALL_K, cutoff=SMALL_CUTOFF)
    steps = metropolis(objective, displacement=0.01, grow_every=6)
    first = generate(seed_frames, steps, n_steps=12, sample_every=6, seed=5)
    second = generate(seed_frames, steps, n_steps=12, sample_every=6, seed=5)
    np.testing.assert_array_equal(first.objective, second.objective)
    np.testing.assert_array_equal(first.accepted, second.accepted)
    for a, b in zip(first.frames, second.frames, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
    other = generate(seed_frames, steps, n_steps=12, sample_every=6, seed=6)
    assert not np.array_equal(first.objective, other.objective)
    assert 0.0 < first.acceptance_rate <= 1.0
    assert len(first.frames) == 4 and set(first.walker) == {0, 1}
    assert first.min_distance_overall >= 1.5
    # One evaluation per proposal plus re-evaluations after rebuilds / reference changes.
    assert first.total_energy_evaluations >= 2 * 12


def test_collapse_is_prevented():
    # A strongly attractive energy would pull all atoms together; min_distance stops it.
    def attraction(positions, cell):
        return 10.0 * jnp.sum((positions - jnp.mean(positions, axis=0)) ** 2)

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.center(vacuum=4.0)
    atoms.pbc = False
    atoms.rattle(0.02, seed=1)
    limit = 2.4
    objective = GenerationObjective(attraction, 0.05, weight=0.0, k=SMALL_K, cutoff=SMALL_CUTOFF)
    steps = gradient_ascent(objective, min_distance=limit, step_size=0.05)
    grad = generate(atoms, steps, n_steps=10, sample_every=5)
    assert grad.min_distance_overall >= limit
    assert grad.energy[-1] < grad.energy[0]  # it did move inwards, up to the limit
    for frame in grad.frames:
        d = frame.get_all_distances()[np.triu_indices(len(frame), 1)]
        assert d.min() >= limit


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kT=0.0), "kT"),
        (dict(kT=-1.0), "kT"),
        (dict(kT=KT, information="median"), "information"),
        (dict(kT=KT, h=-0.1), "bandwidth"),
        (dict(kT=KT, h=np.array([0.01, 0.02])), "scalar bandwidth"),
        (dict(kT=KT, weight=-1.0), "weight"),
        (dict(kT=KT, saturation=0.0), "saturation"),
        (dict(kT=KT, k=0), "k"),
    ],
)
def test_bad_objective_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GenerationObjective(POTENTIAL, **kwargs)


@pytest.mark.parametrize(
    ("method", "kwargs", "match"),
    [
        ("gradient", dict(step_size=0.0), "step_size"),
        ("gradient", dict(max_displacement=-1.0), "max_displacement"),
        ("gradient", dict(max_displacement=0.3), "max_displacement"),  # > 0.45 of the skin
        ("gradient", dict(noise=-0.1), "noise"),
        ("gradient", dict(cell_step_size=-1.0), "cell_step_size"),
        ("gradient", dict(grow_every=0), "grow_every"),
        ("metropolis", dict(temperature_mc=0.0), "temperature_mc"),
        ("metropolis", dict(displacement=0.0), "displacement"),
        ("metropolis", dict(min_distance=-1.0), "min_distance"),
    ],
)
def test_bad_step_settings(method, kwargs, match):
    factory = gradient_ascent if method == "gradient" else metropolis
    with pytest.raises(ValueError, match=match):
        factory(GenerationObjective(POTENTIAL, KT), **kwargs)


def test_bad_seeds_and_driver_input(seed_frames):
    steps = gradient_ascent(GenerationObjective(POTENTIAL, KT, k=SMALL_K, cutoff=SMALL_CUTOFF))
    with pytest.raises(ValueError, match="empty"):
        generate([], steps, n_steps=2)
    with pytest.raises(ValueError, match=r"ase\.Atoms"):
        generate([np.zeros((3, 3))], steps, n_steps=2)
    with pytest.raises(ValueError, match="n_steps"):
        generate(seed_frames, steps, n_steps=0)
    with pytest.raises(ValueError, match="steps must come from"):
        generate(seed_frames, generate, n_steps=2)
    with pytest.raises(ValueError, match="min_distance"):  # the seed is closer than 3 Å
        generate(seed_frames, gradient_ascent(steps.objective, min_distance=3.0), n_steps=2)
    with pytest.raises(ValueError, match="reference"):
        generate(seed_frames, steps, n_steps=2, reference=np.zeros((4, 3)))
    slab = load_example("surface_300K")[0]
    moves = metropolis(steps.objective, cell_displacement=0.01)
    with pytest.raises(ValueError, match="periodic"):
        generate(slab, moves, n_steps=2)
    with pytest.raises(ValueError, match="potential"):
        GenerationObjective("lj", KT)


# --------------------------------------------------------------------------------------------
# The pure steps: a user's own loop equals the driver
# --------------------------------------------------------------------------------------------


OBJECTIVE = GenerationObjective(POTENTIAL, KT, weight=3.0, k=SMALL_K, cutoff=SMALL_CUTOFF)
STEPS = {
    # Settings large enough that 16 steps cross at least one re-allocation of the lists.
    "gradient": dict(step_size=0.05, noise=0.05),
    "metropolis": dict(displacement=0.06, temperature_mc=50.0),
}
# The drivers build their steps with these factories (cached per settings), so the tests below
# share one compilation of each step per precision with the driver runs.
FNS = {
    "gradient": gradient_ascent(OBJECTIVE, grow_every=4, **STEPS["gradient"]),
    "metropolis": metropolis(OBJECTIVE, grow_every=4, **STEPS["metropolis"]),
}


@functools.cache
def _jitted(fn):
    return jax.jit(fn)


def _start(fns, atoms, key, positions=None):
    """Lists allocated at the atoms, a reference of their environments, the initial state."""
    dtype = jnp.zeros(()).dtype
    x0 = jnp.asarray(jaxinfo.descriptors([atoms], k=SMALL_K, cutoff=SMALL_CUTOFF), dtype)
    reference = reference_init(x0, 5 * len(atoms), OBJECTIVE.h)
    lists = fns.allocate(atoms.positions, atoms.cell.array, atoms.pbc)
    positions = atoms.positions if positions is None else positions
    cell = jnp.asarray(atoms.cell.array, dtype)
    return _jitted(fns.init)(jnp.asarray(positions, dtype), cell, lists, reference, key)


def _own_loop(fns, atoms, n_steps, key):
    """A hand-written loop of jitted ``update`` steps with jax-md-style re-allocation."""
    state = _start(fns, atoms, key)
    objectives, reallocations = [float(state.objective)], 0
    while int(state.step) < n_steps:
        state = _jitted(fns.update)(state)
        if bool(state.overflow):
            reallocations += 1
            lists = fns.allocate(state.positions, state.cell, atoms.pbc, like=state.neighbours)
            state = state._replace(neighbours=lists, overflow=jnp.asarray(False))
        else:
            objectives.append(float(state.objective))
    return state, np.array(objectives), reallocations


def _driver_run(method, atoms):
    return generate(atoms, FNS[method], n_steps=16, sample_every=4, seed=2)


@pytest.mark.parametrize("method", ["gradient", "metropolis"])
def test_own_loop_of_update_steps_equals_the_driver(seed_frames, method, dtype):
    atoms = seed_frames[0]
    result = _driver_run(method, atoms)
    key = jax.random.fold_in(jax.random.key(2), 0)  # the driver's key of walker 0
    state, objectives, reallocations = _own_loop(FNS[method], atoms, 16, key)
    assert reallocations >= 1  # the loop crossed at least one re-allocation
    atol = tolerance(dtype, 2e-3, 1e-8)
    np.testing.assert_allclose(objectives, result.objective, atol=atol)
    assert int(state.evaluations) == result.total_energy_evaluations
    assert int(state.reference.count) == 5 * len(atoms)  # seed + 4 emitted frames
    final = result.frames[-1]
    shift = final.get_scaled_positions(wrap=False) - atoms.cell.scaled_positions(
        np.asarray(state.positions, np.float64)
    )
    np.testing.assert_allclose(shift, np.round(shift), atol=tolerance(dtype, 1e-4, 1e-9))
    # The steps are compiled once per settings: another driver run compiles nothing.
    with count_compilations() as compiled:
        _driver_run(method, seed_frames[1])
    assert not compiled, compiled


def test_update_runs_under_scan(seed_frames, dtype):
    fns = FNS["gradient"]
    state = _start(fns, seed_frames[0], jax.random.key(1))
    run = jax.jit(lambda s: jax.lax.scan(lambda c, _: (fns.update(c), None), s, length=3))
    scanned, _ = run(state)
    stepped = state
    for _ in range(3):
        stepped = _jitted(fns.update)(stepped)
    assert int(scanned.step) >= 1 and bool(scanned.overflow) == bool(stepped.overflow)
    atol = tolerance(dtype, 1e-5, 1e-12)
    np.testing.assert_allclose(scanned.positions, stepped.positions, atol=atol)
    np.testing.assert_allclose(scanned.objective, stepped.objective, atol=atol)


def test_optax_optimisers_can_be_swapped(seed_frames):
    fns = gradient_ascent(OBJECTIVE, optimizer=optax.adam(0.01))
    state = _start(fns, seed_frames[0], jax.random.key(0))
    first = float(state.objective)
    for _ in range(4):
        state = _jitted(fns.update)(state)
    assert not bool(state.overflow)
    assert float(state.objective) > first + 0.5
    # Adam's first step moves every coordinate by ~ its learning rate, whatever the gradient.
    start = _start(fns, seed_frames[0], jax.random.key(0))
    moved = _jitted(fns.update)(start).positions - start.positions
    np.testing.assert_allclose(np.abs(moved), 0.01, rtol=0.05)


def test_a_stale_list_flags_overflow_and_leaves_the_state(seed_frames):
    atoms = seed_frames[0]
    moved = atoms.positions.copy()
    moved[0] += [0.3, 0.0, 0.0]  # more than half the 0.5 Å skin since allocation
    for fns in FNS.values():
        state = _start(fns, atoms, jax.random.key(0), positions=moved)
        assert bool(state.overflow)
        state = state._replace(overflow=jnp.asarray(False))
        after = _jitted(fns.update)(state)
        assert bool(after.overflow) and int(after.step) == 0
        np.testing.assert_array_equal(np.asarray(after.positions), np.asarray(state.positions))
        lists = fns.allocate(moved, atoms.cell.array, atoms.pbc, like=state.neighbours)
        after = _jitted(fns.update)(state._replace(neighbours=lists))
        assert not bool(after.overflow) and int(after.step) == 1
