"""Molecular dynamics with δH as a collective variable (metadynamics-style bias).

Velocity Verlet (NVE) or Langevin (BAOAB, NVT) at fixed cell with a potential from
:mod:`jaxinfo.potentials` (or any JAX ``energy_fn(positions, cell)``). An optional bias pushes
the system towards configurations it has not visited: every ``deposit_every`` steps the current
frame's environments join a visited set V (a :class:`jaxinfo.objectives.Reference`; the
starting frame is deposited at step 0), and the bias energy is one of

* ``kind="delta"``: ``U = −strength · mean_i s·tanh(δH(x_i | V) / s)``, a reward for novelty
  (δH in nats, saturated at ``s = saturation`` nats so that far-away configurations feel no
  runaway force; ``strength`` in eV per nat);
* ``kind="hills"``: ``U = strength · Σ_i Σ_{v ∈ V} exp(−‖x_i − v‖² / 2h²)
  = strength · Σ_i exp(−δH(x_i | V))``: Gaussian hills of height ``strength`` (eV) and width h
  centred on every visited environment, i.e. metadynamics in descriptor space.

The pieces are pure functions that compose in a user's own ``jax.lax.scan`` (the jax-md
``simulate`` pattern): :func:`md_energy` builds ``energy_fn(positions, neighbours, reference)``
whose descriptor table is recomputed by top-k from a candidate list at every evaluation (so it
is never stale), and :func:`md_step` returns ``(init_fn, apply_fn)`` of one integrator step.
:func:`run_md` is a thin host loop over them: it runs ``rebuild_every`` steps per compiled
chunk, re-allocates the neighbour lists when their ``overflow`` flag trips (the rejected steps
are redone) and deposits frames. Random numbers are drawn from ``jax.random.fold_in(key, step)``,
so results do not depend on the chunking and equal seeds give identical trajectories.

Energy conservation: with the bias on and no deposits, NVE with the standard descriptor drifts
whatever the time step (it jumps when neighbour ranks k and k + 1 swap inside the cutoff).
``DeltaEntropyBias(smooth=True)`` uses the C∞ variant
:func:`jaxinfo.descriptor.smooth_structure_descriptors`, which leaves only the integrator's
error ∝ dt² (1.1x the unbiased drift at 0.1 eV/nat; measurements in ``docs/design.md``).

Units: positions Å, velocities Å/fs, time fs, masses amu, energies eV, temperatures K.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms, units

from jaxinfo._validation import (
    check_count,
    check_geometry,
    check_positive,
)
from jaxinfo.descriptor import (
    DEFAULT_CUTOFF,
    DEFAULT_K,
    DEFAULT_SOFTNESS,
    DEFAULT_SWITCH_WIDTH,
    smooth_structure_descriptors,
    structure_descriptors,
)
from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.neighbours import allocate_lists, neighbour_list
from jaxinfo.objectives import (
    DESCRIPTOR_SKIN,
    Reference,
    check_information_settings,
    delta_entropies,
    information,
    planned_reference,
    reference_add,
)
from jaxinfo.potentials import as_potential

__all__ = [
    "BIAS_KINDS",
    "DeltaEntropyBias",
    "MDResult",
    "MDState",
    "bias_descriptors",
    "bias_energy",
    "md_energy",
    "md_step",
    "run_md",
]

BIAS_KINDS = ("delta", "hills")
#: 1 amu Å²/fs² in eV.
MVV2E = units._amu * 1e10 / units._e


@dataclasses.dataclass(frozen=True)
class DeltaEntropyBias:
    """Settings of the δH bias (see the module docstring for the two energy forms).

    Attributes:
        strength: eV per nat for ``kind="delta"``, hill height in eV for ``kind="hills"`` (> 0).
        kind: ``"delta"`` or ``"hills"``.
        deposit_every: steps between depositions of the current frame into the visited set.
        saturation: s in nats for ``kind="delta"`` (> 0).
        h: kernel bandwidth, 1/Å.
        k: descriptor neighbours.
        cutoff: descriptor cutoff, Å.
        smooth: use :func:`jaxinfo.descriptor.smooth_structure_descriptors` (C∞ in the
            positions: NVE between deposits conserves energy as the unbiased run does).
        softness: soft-sort temperature of the smooth descriptor, 1/Å.
        switch_width: width of the smooth descriptor's membership and cutoff switches, Å.
    """

    strength: float
    kind: str = "delta"
    deposit_every: int = 100
    saturation: float = 10.0
    h: float = DEFAULT_BANDWIDTH
    k: int = DEFAULT_K
    cutoff: float = DEFAULT_CUTOFF
    smooth: bool = False
    softness: float = DEFAULT_SOFTNESS
    switch_width: float = DEFAULT_SWITCH_WIDTH

    def __post_init__(self):
        check_positive("bias strength (eV)", self.strength)
        if self.kind not in BIAS_KINDS:
            raise ValueError(f"bias kind must be one of {BIAS_KINDS}, got {self.kind!r}")
        check_count("deposit_every", self.deposit_every)
        if self.saturation is None:
            raise ValueError("the bias needs a saturation (nats)")
        check_information_settings(self)
        object.__setattr__(self, "softness", check_positive("softness (1/Å)", self.softness))
        width = check_positive("switch_width (Å)", self.switch_width)
        if width >= self.cutoff / 2:
            raise ValueError(f"switch_width must be < cutoff / 2, got {width} Å")
        object.__setattr__(self, "switch_width", width)


@dataclasses.dataclass
class MDResult:
    """Trajectory and energies of :func:`run_md`.

    Attributes:
        frames: ``ase.Atoms`` every ``record_every`` steps (step 0 included), with velocities
            (ase units) and ``info`` keys ``step``, ``time_fs``, ``energy`` (eV),
            ``bias_energy`` (eV) and ``energy_evaluations`` (cumulative force evaluations).
        time: (n_steps + 1,) time of each step, fs.
        potential_energy: (n_steps + 1,) eV.
        kinetic_energy: (n_steps + 1,) eV.
        bias_energy: (n_steps + 1,) eV (zeros without bias).
        temperature: (n_steps + 1,) instantaneous kinetic temperature, K.
        visited: (n_visited, 2k − 1) descriptors of the deposited frames (empty without bias).
        deposit_steps: steps at which frames were deposited.
        energy_evaluations: force evaluations (potential and bias): one per step, one at the
            start and one after each deposition (the bias changes).
        wall_time: seconds, compilation included.
    """

    frames: list
    time: np.ndarray
    potential_energy: np.ndarray
    kinetic_energy: np.ndarray
    bias_energy: np.ndarray
    temperature: np.ndarray
    visited: np.ndarray
    deposit_steps: list
    energy_evaluations: int
    wall_time: float

    @property
    def total_energy(self) -> np.ndarray:
        """(n_steps + 1,) E_pot + E_kin + U_bias in eV (conserved in NVE between depositions)."""
        return self.potential_energy + self.kinetic_energy + self.bias_energy


def descriptor_neighbours(bias: DeltaEntropyBias):
    """The neighbour-list functions of the bias's descriptor (2k slots when smooth)."""
    return neighbour_list(2 * bias.k if bias.smooth else bias.k, bias.cutoff, skin=DESCRIPTOR_SKIN)


def bias_descriptors(positions, cell, table, bias: DeltaEntropyBias):
    """(n_atoms, 2k − 1) descriptors the bias uses, 1/Å (standard, or smooth with a 2k table),
    at positions (n_atoms, 3) Å and cell (3, 3) rows Å, from the table of
    :func:`descriptor_neighbours` updated there."""
    if bias.smooth:
        return smooth_structure_descriptors(
            positions, cell, table, bias.cutoff, k=bias.k, softness=bias.softness,
            switch_width=bias.switch_width,
        )  # fmt: skip
    return structure_descriptors(positions, cell, table, bias.cutoff)


def bias_energy(positions, cell, table, reference: Reference, bias: DeltaEntropyBias):
    """Bias energy U (scalar, eV) of a configuration against the visited set ``reference``
    (pure, differentiable); arguments as :func:`bias_descriptors`."""
    x = bias_descriptors(positions, cell, table, bias)
    if bias.kind == "delta":
        return -bias.strength * information(x, reference, bias.h, "mean", bias.saturation)
    return bias.strength * jnp.sum(jnp.exp(-delta_entropies(x, reference, bias.h)))


def md_energy(potential, bias: DeltaEntropyBias | None, cell) -> Callable:
    """``energy_fn(positions, neighbours, reference) -> (energy, (e_pot, e_bias, overflow))``.

    ``neighbours`` is a pair ``(potential list or None, descriptor list or None)`` of
    :class:`jaxinfo.neighbours.NeighbourList`; the potential uses its list's candidates (all
    pairs within cutoff + skin), the bias a k-nearest table recomputed at ``positions``.
    ``overflow`` is True when either list is stale at ``positions``.
    """
    potential = as_potential(potential)

    def energy_fn(positions, neighbours, reference):
        pot_list, desc_list = neighbours
        e_pot, overflow = potential.listed_energy(positions, cell, pot_list)
        e_bias = jnp.zeros_like(e_pot)
        if bias is not None:
            desc_list = descriptor_neighbours(bias).update(positions, cell, desc_list)
            overflow = overflow | desc_list.overflow
            e_bias = bias_energy(positions, cell, desc_list.table, reference, bias)
        return e_pot + e_bias, (e_pot, e_bias, overflow)

    return energy_fn


class MDState(NamedTuple):
    """State of :func:`md_step` (a pytree).

    Attributes:
        positions: (n_atoms, 3) Å.
        velocities: (n_atoms, 3) Å/fs.
        forces: (n_atoms, 3) eV/Å at ``positions``.
        energy: scalar, eV (the energy function's value at ``positions``).
        aux: the energy function's auxiliary output at ``positions``.
    """

    positions: jax.Array
    velocities: jax.Array
    forces: jax.Array
    energy: jax.Array
    aux: object


def md_step(energy_fn, masses, *, timestep: float, kT: float = 0.0, friction=None):
    """One velocity-Verlet (NVE) or BAOAB Langevin (NVT) step as ``(init_fn, apply_fn)``.

    Args:
        energy_fn: ``energy_fn(positions, **kwargs) -> (energy, aux)``, eV.
        masses: (n_atoms,) amu.
        timestep: fs.
        kT: bath temperature in eV (Langevin only).
        friction: γ in 1/fs, or None for NVE.

    Returns:
        ``init_fn(positions, velocities, **kwargs) -> MDState`` and
        ``apply_fn(state, key, **kwargs) -> MDState`` (``key`` is ignored for NVE); both pure.
    """
    inv_mass = 1.0 / (jnp.asarray(masses)[:, None] * MVV2E)  # eV/Å -> Å/fs² per unit force
    c1 = None if friction is None else float(np.exp(-friction * timestep))
    value_and_grad = jax.value_and_grad(energy_fn, has_aux=True)

    def init_fn(positions, velocities, **kwargs):
        (energy, aux), grad = value_and_grad(positions, **kwargs)
        return MDState(positions, velocities, -grad, energy, aux)

    def apply_fn(state, key=None, **kwargs):
        dt = jnp.asarray(timestep, state.positions.dtype)
        velocities = state.velocities + 0.5 * dt * state.forces * inv_mass
        positions = state.positions + 0.5 * dt * velocities
        if c1 is not None:
            noise = jax.random.normal(key, velocities.shape, velocities.dtype)
            velocities = c1 * velocities + jnp.sqrt((1.0 - c1 * c1) * kT * inv_mass) * noise
        positions = positions + 0.5 * dt * velocities
        new = init_fn(positions, velocities, **kwargs)
        return new._replace(velocities=new.velocities + 0.5 * dt * new.forces * inv_mass)

    return init_fn, apply_fn


def kinetic_energy(velocities, masses):
    """Kinetic energy in eV of (n, 3) velocities (Å/fs) and (n,) masses (amu)."""
    return 0.5 * MVV2E * jnp.sum(masses[:, None] * velocities * velocities)


@functools.partial(jax.jit, static_argnames=("potential", "bias", "n", "friction", "timestep"))
def _chunk(
    state, cell, neighbours, reference, masses, kT, key, first, n_todo, *, potential, bias, n,
    friction, timestep,
):  # fmt: skip
    """Up to n steps; from the first step whose lists are stale on, the state stays put.

    Returns:
        (state, (e_pot, e_kin, e_bias) per step, number of steps done).
    """
    energy_fn = md_energy(potential, bias, cell)
    _, apply_fn = md_step(energy_fn, masses, timestep=timestep, kT=kT, friction=friction)

    def step(carry, offset):
        old, active = carry
        new = apply_fn(
            old, jax.random.fold_in(key, first + offset), neighbours=neighbours,
            reference=reference,
        )  # fmt: skip
        active = active & (offset < n_todo) & ~new.aux[2]
        new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)
        e_kin = kinetic_energy(new.velocities, masses)
        return (new, active), (new.aux[0], e_kin, new.aux[1], active)

    (state, _), (e_pot, e_kin, e_bias, done) = jax.lax.scan(
        step, (state, jnp.asarray(True)), jnp.arange(n)
    )
    return state, (e_pot, e_kin, e_bias), jnp.sum(done)


@functools.partial(jax.jit, static_argnames=("potential", "bias", "friction", "timestep"))
def _restart(positions, velocities, cell, neighbours, reference, masses, *, potential, bias,
             friction, timestep):  # fmt: skip
    """Deposits the frame into the visited set (with a bias), then recomputes the forces."""
    if bias is not None:
        table = descriptor_neighbours(bias).update(positions, cell, neighbours[1]).table
        x = bias_descriptors(positions, cell, table, bias)
        reference = reference_add(reference, x, bias.h)
    init_fn, _ = md_step(md_energy(potential, bias, cell), masses, timestep=timestep,
                         friction=friction)  # fmt: skip
    return init_fn(positions, velocities, neighbours=neighbours, reference=reference), reference


def _maxwell_boltzmann(masses, temperature, rng):
    sigma = np.sqrt(units.kB * temperature / (masses * MVV2E))  # Å/fs
    velocities = rng.normal(size=(masses.size, 3)) * sigma[:, None]
    if masses.size > 1:
        momentum = np.sum(masses[:, None] * velocities, axis=0)
        velocities -= momentum / np.sum(masses)
    return velocities


def run_md(
    atoms: Atoms,
    potential,
    *,
    n_steps: int,
    timestep: float = 2.0,
    temperature: float = 300.0,
    friction: float | None = None,
    bias: DeltaEntropyBias | None = None,
    visited=None,
    seed: int = 0,
    record_every: int = 10,
    rebuild_every: int = 10,
) -> MDResult:
    """Runs NVE or Langevin molecular dynamics, optionally with a δH bias, at fixed cell.

    Args:
        atoms: starting structure (positions Å, cell Å, masses amu from ``atoms``).
        potential: a :class:`jaxinfo.potentials.Potential` or a JAX callable
            ``energy_fn(positions, cell) -> scalar`` in eV.
        n_steps: number of MD steps (>= 1).
        timestep: fs (> 0).
        temperature: K (> 0): initial Maxwell–Boltzmann velocities (centre-of-mass motion
            removed) and the Langevin bath.
        friction: Langevin friction γ in 1/fs (> 0); None for NVE velocity Verlet.
        bias: a :class:`DeltaEntropyBias`, or None for plain MD.
        visited: optional (N, 2k − 1) descriptors that start the visited set (e.g. from an
            earlier run); the starting frame is deposited in any case.
        seed: seeds the initial velocities and the Langevin noise.
        record_every: steps between recorded frames.
        rebuild_every: most steps per compiled chunk (the neighbour lists are re-allocated
            only when they overflow).

    Returns:
        An :class:`MDResult`.

    Raises:
        ValueError: for bad geometry, n_steps < 1, timestep <= 0, temperature <= 0,
            friction <= 0, or intervals < 1.
        RuntimeError: if an atom moves more than half the skin in a single step (timestep far
            too large or exploding dynamics).

    Example:
        >>> from ase.build import bulk
        >>> from jaxinfo.biased_md import run_md
        >>> from jaxinfo.potentials import SuttonChen
        >>> atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        >>> result = run_md(atoms, SuttonChen(), n_steps=20, temperature=300.0)
        >>> len(result.frames), result.potential_energy.shape
        (3, (21,))
    """
    start = time.perf_counter()
    potential = as_potential(potential)
    if not isinstance(atoms, Atoms):
        raise ValueError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}")
    positions, cell, pbc = check_geometry(atoms.positions, atoms.cell.array, atoms.pbc)
    n_steps = check_count("n_steps", n_steps)
    timestep = check_positive("timestep (fs)", timestep)
    temperature = check_positive("temperature (K)", temperature)
    if friction is not None:
        friction = check_positive("friction (1/fs)", friction)
    rebuild_every = check_count("rebuild_every", rebuild_every)
    record_every = check_count("record_every", record_every)
    if bias is not None and not isinstance(bias, DeltaEntropyBias):
        raise ValueError(f"bias must be a DeltaEntropyBias or None, got {bias!r}")
    events = (rebuild_every, record_every) + ((bias.deposit_every,) if bias else ())
    masses = np.asarray(atoms.get_masses(), dtype=np.float64)
    if np.any(masses <= 0):
        raise ValueError("all masses must be > 0 (amu)")

    dtype = jnp.zeros(()).dtype
    velocities = _maxwell_boltzmann(masses, temperature, np.random.default_rng(seed))
    key = jax.random.key(seed)
    static = dict(potential=potential, bias=bias, friction=friction, timestep=timestep)
    cell_j, masses_j = jnp.asarray(cell, dtype), jnp.asarray(masses, dtype)
    kT = jnp.asarray(units.kB * temperature, dtype)

    list_fns = (potential.neighbour_list(), None if bias is None else descriptor_neighbours(bias))

    def allocate(positions, like=None):  # keeps capacities that suffice: no recompile
        return allocate_lists(list_fns, np.asarray(positions, np.float64), cell, pbc, like)

    # The visited set: a reference of planned capacity (it cannot overflow).
    n_atoms, width = positions.shape[0], 2 * (bias.k if bias else DEFAULT_K) - 1
    rows = np.zeros((0, width)) if bias is None or visited is None else visited
    room = 0 if bias is None else (1 + n_steps // bias.deposit_every) * n_atoms
    reference = planned_reference(rows, width, room, bias.h if bias else 1.0, dtype)
    deposit_steps = [] if bias is None else [0]
    neighbours, fresh = allocate(positions), True
    state, reference = _restart(jnp.asarray(positions, dtype), jnp.asarray(velocities, dtype),
                                cell_j, neighbours, reference, masses_j, **static)  # fmt: skip
    evaluations = 1  # the initial forces
    e_kin = float(kinetic_energy(state.velocities, masses_j))
    energies = [(float(state.aux[0]), e_kin, float(state.aux[1]))]
    frames = []

    def record(state, step, e_pot, e_bias):
        frame = Atoms(numbers=atoms.numbers, positions=np.asarray(state.positions), cell=cell,
                      pbc=pbc, masses=masses)  # fmt: skip
        frame.set_velocities(np.asarray(state.velocities) / units.fs)  # ase: Å / (ase time)
        frame.info.update(step=step, time_fs=step * timestep, energy=float(e_pot),
                          bias_energy=float(e_bias), energy_evaluations=evaluations)  # fmt: skip
        frames.append(frame)

    record(state, 0, *energies[0][::2])
    step = 0
    while step < n_steps:
        todo = min(n_steps - step, *(every - step % every for every in events))
        state, chunk_energies, done = _chunk(
            state, cell_j, neighbours, reference, masses_j, kT, key, step, todo,
            n=rebuild_every, **static,
        )  # fmt: skip
        done = int(done)
        evaluations += done
        energies.extend(np.asarray(chunk_energies, dtype=np.float64).T[:done].tolist())
        step += done
        if done < todo:  # the lists went stale: re-allocate and redo the rest of the chunk
            if fresh and done == 0:
                raise RuntimeError(
                    "an atom moved more than half the skin in one step: reduce the timestep"
                )
            neighbours, fresh = allocate(state.positions, like=neighbours), True
            continue
        fresh = False
        if step % record_every == 0 or step == n_steps:
            record(state, step, energies[-1][0], energies[-1][2])
        if bias is not None and step % bias.deposit_every == 0 and step < n_steps:
            deposit_steps.append(step)  # the bias changes: the forces are recomputed
            state, reference = _restart(state.positions, state.velocities, cell_j, neighbours,
                                        reference, masses_j, **static)  # fmt: skip
            evaluations += 1

    energies = np.array(energies)
    n_dof = max(3 * n_atoms - 3, 1)
    count = int(reference.count)
    return MDResult(
        frames=frames,
        time=np.arange(n_steps + 1) * timestep,
        potential_energy=energies[:, 0],
        kinetic_energy=energies[:, 1],
        bias_energy=energies[:, 2],
        temperature=2.0 * energies[:, 1] / (n_dof * units.kB),
        visited=np.asarray(reference.x[:count], dtype=np.float64),
        deposit_steps=deposit_steps,
        energy_evaluations=evaluations,
        wall_time=time.perf_counter() - start,
    )
