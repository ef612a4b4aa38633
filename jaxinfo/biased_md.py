"""Molecular dynamics with δH as a collective variable (metadynamics-style bias).

Plain-JAX velocity Verlet (NVE) or Langevin (BAOAB, NVT) at fixed cell with a potential from
:mod:`jaxinfo.potentials` (or any JAX ``energy_fn(positions, cell)``). An optional bias pushes
the system towards configurations it has not visited: every ``deposit_every`` steps the current
frame's environments join a visited set V (the starting frame is deposited at step 0), and the
bias energy is one of

* ``kind="delta"``: ``U = −strength · mean_i s·tanh(δH(x_i | V) / s)``, a reward for novelty
  (δH in nats, saturated at ``s = saturation`` nats so that far-away configurations feel no
  runaway force; ``strength`` in eV per nat);
* ``kind="hills"``: ``U = strength · Σ_i Σ_{v ∈ V} exp(−‖x_i − v‖² / 2h²)
  = strength · Σ_i exp(−δH(x_i | V))``: Gaussian hills of height ``strength`` (eV) and width h
  centred on every visited environment, i.e. metadynamics in descriptor space.

Bias forces are ``−∂U/∂r`` through :func:`jaxinfo.descriptor.structure_descriptors` (jax.grad).
With ``bias=None`` the loop is plain MD: velocity Verlet conserves ``E_pot + E_kin``.

Units: positions Å, velocities Å/fs, time fs, masses amu, energies eV, temperatures K.

The loop runs ``rebuild_every`` steps at a time in one compiled ``lax.scan``; between chunks the
host rebuilds the neighbour tables (static shapes). If an atom moved more than half the
potential's skin within a chunk, the chunk is redone in halves, so the potential never misses a
pair. Random numbers are drawn from ``jax.random.fold_in(key, step)``, so results do not depend
on the chunking and equal seeds give identical trajectories.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms, units

from jaxinfo._validation import (
    check_bandwidth,
    check_count,
    check_cutoff,
    check_geometry,
    check_k,
    check_positive,
)
from jaxinfo.descriptor import DEFAULT_CUTOFF, DEFAULT_K, structure_descriptors
from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.generation import DESCRIPTOR_SKIN
from jaxinfo.kernels import log_kernel_sums
from jaxinfo.neighbours import neighbour_table
from jaxinfo.potentials import as_potential

__all__ = ["BIAS_KINDS", "DeltaEntropyBias", "MDResult", "run_md"]

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
    """

    strength: float
    kind: str = "delta"
    deposit_every: int = 100
    saturation: float = 10.0
    h: float = DEFAULT_BANDWIDTH
    k: int = DEFAULT_K
    cutoff: float = DEFAULT_CUTOFF

    def __post_init__(self):
        check_positive("bias strength (eV)", self.strength)
        if self.kind not in BIAS_KINDS:
            raise ValueError(f"bias kind must be one of {BIAS_KINDS}, got {self.kind!r}")
        check_count("deposit_every", self.deposit_every)
        check_positive("saturation (nats)", self.saturation)
        if check_bandwidth(self.h).ndim != 0:
            raise ValueError("the bias needs a scalar bandwidth h")
        object.__setattr__(self, "h", float(self.h))
        object.__setattr__(self, "k", check_k(self.k))
        object.__setattr__(self, "cutoff", check_cutoff(self.cutoff))


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


def _bias_energy(positions, cell, desc_table, visited, visited_log_w, bias: DeltaEntropyBias):
    x = structure_descriptors(positions, cell, desc_table, bias.cutoff)
    log_sums = log_kernel_sums(x, visited, bias.h, log_weights=visited_log_w)
    if bias.kind == "delta":
        s = bias.saturation
        return -bias.strength * jnp.mean(s * jnp.tanh(-log_sums / s))
    return bias.strength * jnp.sum(jnp.exp(log_sums))


def _forces(positions, cell, tables, visited, potential, bias):
    """Forces (eV/Å), potential energy and bias energy (eV)."""
    pot_table, desc_table, visited_log_w = tables

    def total(positions):
        e_pot = potential.energy(positions, cell, pot_table)
        if bias is None:
            return e_pot, (e_pot, jnp.zeros_like(e_pot))
        e_bias = _bias_energy(positions, cell, desc_table, visited, visited_log_w, bias)
        return e_pot + e_bias, (e_pot, e_bias)

    (_, (e_pot, e_bias)), grad = jax.value_and_grad(total, has_aux=True)(positions)
    return -grad, e_pot, e_bias


@functools.partial(jax.jit, static_argnames=("potential", "bias"))
def _initial_forces(positions, cell, tables, visited, *, potential, bias):
    return _forces(positions, cell, tables, visited, potential, bias)


@functools.partial(jax.jit, static_argnames=("potential", "bias", "n", "langevin"))
def _chunk(
    state,
    cell,
    tables,
    visited,
    masses,
    params,
    key,
    first_step,
    n_todo,
    half_skin,
    *,
    potential,
    bias,
    n,
    langevin,
):
    """Up to n BAOAB (or velocity Verlet) steps with one set of tables.

    Steps beyond ``n_todo``, and every step from the first one that would move an atom more
    than ``half_skin`` (Å) from where the tables were built, leave the state unchanged.

    Returns:
        (state, (e_pot, e_kin, e_bias) per step, number of steps done).
    """
    dt, c1, kT = params
    inv_mass = 1.0 / (masses[:, None] * MVV2E)  # (eV/Å) -> Å/fs² per unit force
    built = state[0]

    def step(carry, offset):
        old, active = carry
        positions, velocities, forces = old
        velocities = velocities + 0.5 * dt * forces * inv_mass
        positions = positions + 0.5 * dt * velocities
        if langevin:
            index = first_step + offset
            noise = jax.random.normal(jax.random.fold_in(key, index), velocities.shape)
            sigma = jnp.sqrt((1.0 - c1 * c1) * kT * inv_mass)
            velocities = c1 * velocities + sigma * noise.astype(velocities.dtype)
        positions = positions + 0.5 * dt * velocities
        moved = jnp.max(jnp.sum((positions - built) ** 2, axis=-1))
        active = active & (offset < n_todo) & (moved <= half_skin * half_skin)
        # Forces are computed only for steps that are taken (a rejected step costs nothing).
        forces, e_pot, e_bias = jax.lax.cond(
            active,
            lambda p: _forces(p, cell, tables, visited, potential, bias),
            lambda p: (jnp.zeros_like(p), jnp.zeros((), p.dtype), jnp.zeros((), p.dtype)),
            positions,
        )
        velocities = velocities + 0.5 * dt * forces * inv_mass
        e_kin = 0.5 * MVV2E * jnp.sum(masses[:, None] * velocities * velocities)
        new = jax.tree.map(
            lambda a, b: jnp.where(active, a, b), (positions, velocities, forces), old
        )
        return (new, active), (e_pot, e_kin, e_bias, active)

    (state, _), (e_pot, e_kin, e_bias, done) = jax.lax.scan(
        step, (state, jnp.asarray(True)), jnp.arange(n)
    )
    return state, (e_pot, e_kin, e_bias), jnp.sum(done)


@functools.partial(jax.jit, static_argnames=("cutoff",))
def _descriptors(positions, cell, table, cutoff):
    return structure_descriptors(positions, cell, table, cutoff)


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
        record_every: steps between recorded frames; a multiple of ``rebuild_every``.
        rebuild_every: steps per compiled chunk between host rebuilds of the neighbour tables;
            must divide ``bias.deposit_every``.

    Returns:
        An :class:`MDResult`.

    Raises:
        ValueError: for bad geometry, n_steps < 1, timestep <= 0, temperature <= 0,
            friction <= 0, intervals that are not multiples of ``rebuild_every``, or a
            neighbour-table overflow of the potential.
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
    if record_every % rebuild_every:
        raise ValueError(
            f"record_every ({record_every}) must be a multiple of rebuild_every ({rebuild_every})"
        )
    if bias is not None:
        if not isinstance(bias, DeltaEntropyBias):
            raise ValueError(f"bias must be a DeltaEntropyBias or None, got {bias!r}")
        if bias.deposit_every % rebuild_every:
            raise ValueError(
                f"bias.deposit_every ({bias.deposit_every}) must be a multiple of "
                f"rebuild_every ({rebuild_every})"
            )
    masses = np.asarray(atoms.get_masses(), dtype=np.float64)
    if np.any(masses <= 0):
        raise ValueError("all masses must be > 0 (amu)")

    dtype = jnp.zeros(()).dtype
    rng = np.random.default_rng(seed)
    velocities = _maxwell_boltzmann(masses, temperature, rng)
    key = jax.random.key(seed)
    kT = units.kB * temperature
    c1 = 1.0 if friction is None else float(np.exp(-friction * timestep))
    params = (jnp.asarray(timestep, dtype), jnp.asarray(c1, dtype), jnp.asarray(kT, dtype))
    langevin = friction is not None
    cell_j = jnp.asarray(cell, dtype)
    masses_j = jnp.asarray(masses, dtype)
    skin = potential.skin if potential.cutoff is not None else np.inf

    # Visited set: a buffer of planned capacity (padding rows have weight zero).
    n_atoms = positions.shape[0]
    visited_rows = np.zeros((0, 2 * (bias.k if bias else DEFAULT_K) - 1))
    if bias is not None and visited is not None:
        visited_rows = np.asarray(visited, dtype=np.float64)
        if visited_rows.ndim != 2 or visited_rows.shape[1] != 2 * bias.k - 1:
            raise ValueError(
                f"visited must have shape (N, {2 * bias.k - 1}), got {visited_rows.shape}"
            )
    n_deposits = 1 + n_steps // bias.deposit_every if bias is not None else 0
    capacity = max(visited_rows.shape[0] + n_deposits * n_atoms, 1)
    buffer = np.zeros((capacity, visited_rows.shape[1]))
    buffer[: visited_rows.shape[0]] = visited_rows
    log_w = np.full(capacity, -np.inf)
    log_w[: visited_rows.shape[0]] = 0.0
    count = visited_rows.shape[0]
    deposit_steps = []
    evaluations = 1  # the initial forces

    def tables_for(positions):
        pot_table = potential.neighbour_table(positions, cell, pbc)
        desc_table = None
        if bias is not None:
            desc_table = neighbour_table(
                positions, cell, pbc, bias.k, bias.cutoff + DESCRIPTOR_SKIN
            )
        return pot_table, desc_table

    def deposit(positions, step):
        nonlocal count
        _, desc_table = tables_for(positions)
        x = np.asarray(_descriptors(jnp.asarray(positions, dtype), cell_j, desc_table, bias.cutoff))
        buffer[count : count + n_atoms] = x
        log_w[count : count + n_atoms] = 0.0
        count += n_atoms
        deposit_steps.append(step)

    if bias is not None:
        deposit(positions, 0)
    visited_j = jnp.asarray(buffer, dtype)
    static = dict(potential=potential, bias=bias)

    pot_table, desc_table = tables_for(positions)
    pos_j, vel_j = jnp.asarray(positions, dtype), jnp.asarray(velocities, dtype)
    forces, e_pot, e_bias = _initial_forces(
        pos_j, cell_j, (pot_table, desc_table, jnp.asarray(log_w, dtype)), visited_j, **static
    )
    e_kin = 0.5 * MVV2E * float(np.sum(masses[:, None] * velocities**2))
    energies = [(float(e_pot), e_kin, float(e_bias))]
    frames = []

    def record(pos, vel, step, e_pot, e_bias):
        frame = Atoms(
            numbers=atoms.numbers, positions=np.asarray(pos), cell=cell, pbc=pbc, masses=masses
        )
        frame.set_velocities(np.asarray(vel) / units.fs)  # ase velocity units: Å / (ase time)
        frame.info.update(
            step=step,
            time_fs=step * timestep,
            energy=float(e_pot),
            bias_energy=float(e_bias),
            energy_evaluations=evaluations,
        )
        frames.append(frame)

    record(pos_j, vel_j, 0, e_pot, e_bias)
    state = (pos_j, vel_j, forces)

    half_skin = jnp.asarray(0.5 * skin if np.isfinite(skin) else 1e30, dtype)

    def advance(state, step, n):
        """Runs n steps from ``step``, rebuilding the tables whenever atoms moved too far."""
        nonlocal evaluations
        out = []
        while n > 0:
            tables = (
                *tables_for(np.asarray(state[0], dtype=np.float64)),
                jnp.asarray(log_w, dtype),
            )
            state, energies, done = _chunk(
                state,
                cell_j,
                tables,
                visited_j,
                masses_j,
                params,
                key,
                step,
                n,
                half_skin,
                n=rebuild_every,
                langevin=langevin,
                **static,
            )
            done = int(done)
            evaluations += done
            if done == 0:
                raise RuntimeError(
                    f"an atom moved more than half the skin ({0.5 * skin} Å) in one step: "
                    "reduce the timestep"
                )
            out.append(np.asarray(energies, dtype=np.float64)[:, :done])
            step, n = step + done, n - done
        return state, list(np.concatenate(out, axis=1))

    step = 0
    while step < n_steps:
        n = min(rebuild_every, n_steps - step)
        state, (e_pot_s, e_kin_s, e_bias_s) = advance(state, step, n)
        energies.extend(zip(e_pot_s, e_kin_s, e_bias_s, strict=True))
        step += n
        if step % record_every == 0 or step == n_steps:
            record(state[0], state[1], step, e_pot_s[-1], e_bias_s[-1])
        if bias is not None and step % bias.deposit_every == 0 and step < n_steps:
            deposit(np.asarray(state[0], dtype=np.float64), step)
            visited_j = jnp.asarray(buffer, dtype)
            # The bias changed: recompute the forces of the current state.
            pot_table, desc_table = tables_for(np.asarray(state[0], dtype=np.float64))
            forces, _, _ = _initial_forces(
                state[0],
                cell_j,
                (pot_table, desc_table, jnp.asarray(log_w, dtype)),
                visited_j,
                **static,
            )
            state = (state[0], state[1], forces)
            evaluations += 1

    energies = np.array(energies)
    n_dof = max(3 * n_atoms - 3, 1)
    return MDResult(
        frames=frames,
        time=np.arange(n_steps + 1) * timestep,
        potential_energy=energies[:, 0],
        kinetic_energy=energies[:, 1],
        bias_energy=energies[:, 2],
        temperature=2.0 * energies[:, 1] / (n_dof * units.kB),
        visited=buffer[:count].copy(),
        deposit_steps=deposit_steps,
        energy_evaluations=evaluations,
        wall_time=time.perf_counter() - start,
    )
