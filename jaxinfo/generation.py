"""Dataset generation by maximising information against a physical energy.

Starting from seed structures, atoms (and optionally the cell) move to raise

    objective = λ · I(new environments) − (E − E_seed) / kT

where I is an information term in nats and E the potential energy in eV:

* ``information="mean"`` or ``"max"``: mean or max over the structure's atoms of
  δH(x_i | reference) = −log Σ_j K(x_i, x_j) (:func:`jaxinfo.delta_entropy`), each saturated
  as ``s·tanh(δH_i / s)`` (``saturation`` s = 10 nats by default; None for the raw δH);
* ``information="entropy"``: the entropy H(reference ∪ new) of the growing dataset.

Two drivers share the objective:

* :func:`generate_gradient`: gradient ascent. Each step moves every atom by
  ``step_size · kT · ∂objective/∂r`` (= step_size · (F + λ kT ∇I), a steepest descent on the
  free-energy-like ``E − λ kT I`` with mobility ``step_size`` in Å²/eV), capped at
  ``max_displacement`` per atom.
* :func:`generate_metropolis`: random Gaussian displacements of all atoms, accepted with
  probability ``min(1, exp(Δobjective / temperature_mc))``.

Every ``sample_every`` steps the current structure is emitted as a frame; with
``grow_reference=True`` its environments join the reference, so later steps are pushed away
from what was already generated (the objective then drops at each emission: compare values
within one emission window, or use ``grow_reference=False`` for a fixed target).

Collapse guard: no move is taken that brings two atoms (periodic images included) closer than
``min_distance`` (default 1.5 Å, suitable for Cu): gradient steps are halved until they
satisfy it, Metropolis proposals violating it are rejected. The result reports the shortest
distance seen. Neighbour tables (static shapes) are rebuilt on the host every
``rebuild_every`` steps and whenever an atom has moved more than half the potential's skin.

The potential is any :class:`jaxinfo.potentials.Potential` (Lennard-Jones, Morse, Sutton–Chen)
or any JAX callable ``energy_fn(positions, cell) -> scalar`` in eV, such as a wrapped jax-md
energy (see :mod:`jaxinfo.potentials`).

Energy evaluations are counted as calls of the potential (energy, or energy and gradient): one
per gradient step, one per Metropolis proposal, plus the re-evaluations of the current state
that Metropolis needs after a table rebuild or a change of the reference.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms

from jaxinfo._validation import (
    check_bandwidth,
    check_count,
    check_cutoff,
    check_k,
    check_positive,
)
from jaxinfo.batching import descriptors as dataset_descriptors
from jaxinfo.descriptor import DEFAULT_CUTOFF, DEFAULT_K, structure_descriptors
from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.neighbours import neighbour_table
from jaxinfo.objectives import Reference, reference_add, reference_init
from jaxinfo.objectives import information as objective_information
from jaxinfo.potentials import Potential, as_potential, minimum_distance

__all__ = [
    "INFORMATION_TERMS",
    "GenerationResult",
    "generate_gradient",
    "generate_metropolis",
]

INFORMATION_TERMS = ("mean", "max", "entropy")
#: Extra radius (Å) of the descriptor table, so neighbours moving inside the cutoff are seen.
DESCRIPTOR_SKIN = 0.5
_MAX_HALVINGS = 10


@dataclasses.dataclass
class GenerationResult:
    """Frames and per-step history of a generation run.

    Per-step arrays have one entry per evaluated state (``n_steps + 1`` per walker for gradient
    ascent, ``n_steps + 1`` per walker for Metropolis, recorded after each accept/reject).

    Attributes:
        frames: emitted structures (``ase.Atoms``); ``info`` holds ``method``, ``walker``,
            ``step``, ``objective``, ``information`` (nats), ``energy`` (eV),
            ``min_distance`` (Å) and ``energy_evaluations`` (cumulative count at emission).
        objective: (n_records,) objective λ·I − (E − E_seed)/kT, dimensionless.
        information: (n_records,) information term I in nats (mean/max δH or H).
        energy: (n_records,) potential energy in eV.
        min_distance: (n_records,) shortest interatomic distance in Å.
        walker: (n_records,) index of the seed each record belongs to.
        energy_evaluations: (n_records,) cumulative potential evaluations at each record.
        accepted: (n_records,) bool, Metropolis acceptances (all True for gradient ascent).
        total_energy_evaluations: potential evaluations spent in all.
        min_distance_limit: the enforced minimum distance, Å.
        method: ``"gradient"`` or ``"metropolis"``.
        wall_time: seconds spent, compilation included.
    """

    frames: list
    objective: np.ndarray
    information: np.ndarray
    energy: np.ndarray
    min_distance: np.ndarray
    walker: np.ndarray
    energy_evaluations: np.ndarray
    accepted: np.ndarray
    total_energy_evaluations: int
    min_distance_limit: float
    method: str
    wall_time: float

    @property
    def delta_entropy(self) -> np.ndarray:
        """Alias of :attr:`information` (the δH term for ``information="mean"``/``"max"``)."""
        return self.information

    @property
    def min_distance_overall(self) -> float:
        """Shortest interatomic distance over the whole run, Å."""
        return float(np.min(self.min_distance))

    @property
    def acceptance_rate(self) -> float:
        """Fraction of accepted moves (1.0 for gradient ascent)."""
        return float(np.mean(self.accepted))

    @property
    def frame_energy_evaluations(self) -> np.ndarray:
        """(n_frames,) cumulative energy evaluations at which each frame was emitted."""
        return np.array([f.info["energy_evaluations"] for f in self.frames], dtype=np.int64)


# ------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------


def _check_seeds(seeds, *, periodic_cell: bool) -> list:
    if isinstance(seeds, Atoms):
        seeds = [seeds]
    try:
        seeds = list(seeds)
    except TypeError:
        raise ValueError(f"seeds must be an ase.Atoms or a list of them, got {seeds!r}") from None
    if not seeds:
        raise ValueError("seeds is empty: give at least one starting structure")
    for index, atoms in enumerate(seeds):
        if not isinstance(atoms, Atoms):
            raise ValueError(f"seed {index} is a {type(atoms).__name__}, expected ase.Atoms")
        if len(atoms) == 0:
            raise ValueError(f"seed {index} has no atoms")
        if periodic_cell and not np.all(atoms.pbc):
            raise ValueError(
                f"seed {index}: cell moves need a structure periodic along all three axes"
            )
    return seeds


@dataclasses.dataclass(frozen=True)
class _Config:
    potential: Potential
    kT: float
    information: str
    weight: float
    saturation: float | None
    h: float
    k: int
    cutoff: float
    min_distance: float
    sample_every: int
    rebuild_every: int
    grow_reference: bool
    dtype: object


def _config(
    potential,
    kT,
    information,
    information_weight,
    saturation,
    h,
    k,
    cutoff,
    min_distance,
    sample_every,
    rebuild_every,
    grow_reference,
):
    if information not in INFORMATION_TERMS:
        raise ValueError(f"information must be one of {INFORMATION_TERMS}, got {information!r}")
    h_array = check_bandwidth(h)
    if h_array.ndim != 0:
        raise ValueError(f"generation needs a scalar bandwidth h, got shape {h_array.shape}")
    return _Config(
        potential=as_potential(potential),
        kT=check_positive("kT (eV)", kT),
        information=information,
        weight=check_positive("information_weight", information_weight, allow_zero=True),
        saturation=None if saturation is None else check_positive("saturation", saturation),
        h=float(h_array),
        k=check_k(k),
        cutoff=check_cutoff(cutoff),
        min_distance=check_positive("min_distance (Å)", min_distance, allow_zero=True),
        sample_every=check_count("sample_every", sample_every),
        rebuild_every=check_count("rebuild_every", rebuild_every),
        grow_reference=bool(grow_reference),
        dtype=jnp.zeros(()).dtype,
    )


# ------------------------------------------------------------------------------------------
# The objective (pure JAX)
# ------------------------------------------------------------------------------------------


def _terms(
    positions,
    strain,
    cell,
    desc_table,
    pot_table,
    reference,
    kT,
    h,
    weight,
    *,
    potential,
    information,
    cutoff,
    saturation,
):
    """Returns (objective without the E_seed offset, (I, E, min distance, descriptors))."""
    deform = jnp.eye(3, dtype=positions.dtype) + 0.5 * (strain + strain.T)
    positions, cell = positions @ deform, cell @ deform
    x = structure_descriptors(positions, cell, desc_table, cutoff)
    info = objective_information(x, reference, h, information, saturation)
    energy = potential.energy(positions, cell, pot_table)
    d_min = minimum_distance(positions, cell, desc_table)
    return weight * info - energy / kT, (info, energy, d_min, x)


_STATIC = ("potential", "information", "cutoff", "saturation")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _value(*args, **static):
    return _terms(*args, **static)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _value_and_grad(*args, **static):
    def f(positions, strain, *rest):
        return _terms(positions, strain, *rest, **static)

    return jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(*args)


@jax.jit
def _min_distance(positions, cell, table):
    return minimum_distance(positions, cell, table)


_add = jax.jit(reference_add, static_argnames=("h",))


# ------------------------------------------------------------------------------------------
# Host state: walkers
# ------------------------------------------------------------------------------------------


class _Walker:
    """One structure being moved, with its neighbour tables."""

    def __init__(self, atoms: Atoms, index: int, config: _Config):
        self.config = config
        self.index = index
        self.numbers = atoms.numbers.copy()
        self.pbc = atoms.pbc.copy()
        self.positions = np.array(atoms.positions, dtype=np.float64)
        self.cell = np.array(atoms.cell.array, dtype=np.float64)
        self.rebuild()
        d_min = float(self.min_distance(self.positions, self.cell))
        if d_min < config.min_distance:
            raise ValueError(
                f"seed {index} already has atoms {d_min:.3f} Å apart, closer than "
                f"min_distance={config.min_distance} Å"
            )

    def rebuild(self):
        config = self.config
        try:
            self.desc_table = neighbour_table(
                self.positions, self.cell, self.pbc, config.k, config.cutoff + DESCRIPTOR_SKIN
            )
            self.pot_table = config.potential.neighbour_table(self.positions, self.cell, self.pbc)
        except ValueError as error:
            raise ValueError(f"walker {self.index}: {error}") from None
        self.built_positions = self.positions.copy()
        self.built_cell = self.cell.copy()

    def needs_rebuild(self) -> bool:
        """True when pair distances may have changed by more than a table's skin."""
        potential = self.config.potential
        skin, radius = DESCRIPTOR_SKIN, self.config.cutoff + DESCRIPTOR_SKIN
        if potential.cutoff is not None:
            skin, radius = min(skin, potential.skin), max(radius, potential.table_cutoff)
        affine = np.linalg.solve(self.built_cell, self.cell)  # built_cell @ affine = cell
        moved = self.positions - self.built_positions @ affine
        strain = np.linalg.norm(affine - np.eye(3), 2)
        return 2.0 * float(np.max(np.linalg.norm(moved, axis=1))) + strain * radius > skin

    def arrays(self, positions=None, cell=None):
        dtype = self.config.dtype
        positions = self.positions if positions is None else positions
        cell = self.cell if cell is None else cell
        return jnp.asarray(positions, dtype=dtype), jnp.asarray(cell, dtype=dtype)

    def min_distance(self, positions, cell):
        p, c = self.arrays(positions, cell)
        return float(_min_distance(p, c, self.desc_table))

    def frame(self) -> Atoms:
        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        if atoms.pbc.any():
            atoms.wrap()
        return atoms


def _evaluate(walker: _Walker, reference: Reference, *, grad: bool, positions=None, cell=None):
    config = walker.config
    p, c = walker.arrays(positions, cell)
    args = (
        p,
        jnp.zeros((3, 3), dtype=config.dtype),
        c,
        walker.desc_table,
        walker.pot_table,
        reference,
        jnp.asarray(config.kT, config.dtype),
        config.h,
        jnp.asarray(config.weight, config.dtype),
    )
    static = dict(
        potential=config.potential,
        information=config.information,
        cutoff=config.cutoff,
        saturation=config.saturation,
    )
    if grad:
        (_, aux), grads = _value_and_grad(*args, **static)
        return aux, grads
    _, aux = _value(*args, **static)
    return aux, None


def _as_floats(aux):
    info, energy, d_min, x = aux
    return float(info), float(energy), float(d_min), x


def _initial_reference(seeds, reference, config: _Config, n_new_rows: int) -> Reference:
    if reference is None:
        x0 = dataset_descriptors(seeds, config.k, config.cutoff)
    elif isinstance(reference, Atoms) or (
        isinstance(reference, list | tuple) and reference and isinstance(reference[0], Atoms)
    ):
        x0 = dataset_descriptors(reference, config.k, config.cutoff)
    else:
        x0 = np.asarray(reference, dtype=np.float64)
        width = 2 * config.k - 1
        if x0.ndim != 2 or x0.shape[0] == 0 or x0.shape[1] != width:
            raise ValueError(
                f"reference must be a list of ase.Atoms or an (N, {width}) descriptor array "
                f"(k={config.k}), got shape {x0.shape}"
            )
    x0 = jnp.asarray(x0, config.dtype)
    return reference_init(x0, x0.shape[0] + n_new_rows, config.h)


class _History:
    def __init__(self):
        self.columns = {
            k: [] for k in ("objective", "info", "energy", "d_min", "walker", "evals", "acc")
        }

    def add(self, objective, info, energy, d_min, walker, evals, accepted):
        for key, value in zip(
            self.columns, (objective, info, energy, d_min, walker, evals, accepted), strict=True
        ):
            self.columns[key].append(value)

    def result(self, frames, evals, config, method, start):
        c = self.columns
        return GenerationResult(
            frames=frames,
            objective=np.array(c["objective"]),
            information=np.array(c["info"]),
            energy=np.array(c["energy"]),
            min_distance=np.array(c["d_min"]),
            walker=np.array(c["walker"], dtype=np.int64),
            energy_evaluations=np.array(c["evals"], dtype=np.int64),
            accepted=np.array(c["acc"], dtype=bool),
            total_energy_evaluations=int(evals),
            min_distance_limit=config.min_distance,
            method=method,
            wall_time=time.perf_counter() - start,
        )


def _emit(
    frames, walker, reference, config, method, step, objective, info, energy, d_min, evals, x
):
    atoms = walker.frame()
    atoms.info.update(
        method=method,
        walker=walker.index,
        step=step,
        objective=objective,
        information=info,
        energy=energy,
        min_distance=d_min,
        energy_evaluations=evals,
        potential=type(config.potential).__name__,
    )
    frames.append(atoms)
    return _add(reference, x, h=config.h) if config.grow_reference else reference


def _plan(seeds, reference, config, n_steps):
    n_frames = n_steps // config.sample_every
    extra = sum(len(a) for a in seeds) * n_frames if config.grow_reference else 0
    return _initial_reference(seeds, reference, config, extra)


# ------------------------------------------------------------------------------------------
# Public drivers
# ------------------------------------------------------------------------------------------


def generate_gradient(
    seeds,
    potential,
    *,
    kT: float,
    reference=None,
    information: str = "mean",
    information_weight: float = 1.0,
    saturation: float | None = 10.0,
    n_steps: int = 100,
    step_size: float = 0.01,
    max_displacement: float = 0.1,
    noise: float = 0.0,
    cell_step_size: float = 0.0,
    max_strain: float = 0.01,
    sample_every: int = 10,
    grow_reference: bool = True,
    rebuild_every: int = 10,
    min_distance: float = 1.5,
    h: float = DEFAULT_BANDWIDTH,
    k: int = DEFAULT_K,
    cutoff: float = DEFAULT_CUTOFF,
    seed: int = 0,
) -> GenerationResult:
    """Generates structures by gradient ascent on ``λ·I − (E − E_seed)/kT``.

    Each seed is moved for ``n_steps`` steps in turn. A step moves atom i by
    ``step_size · kT · ∂objective/∂r_i`` (Å), i.e. ``step_size · (F_i + λ kT ∇_i I)``, capped
    at ``max_displacement``, plus optional Gaussian ``noise``; with ``cell_step_size > 0`` the
    cell is strained by ``cell_step_size · kT · ∂objective/∂ε`` (atoms follow affinely),
    capped at ``max_strain`` per component. Steps that would bring atoms closer than
    ``min_distance`` are halved until they do not (after 10 halvings the atoms stay put).

    Args:
        seeds: an ``ase.Atoms`` or a non-empty list of them (starting structures).
        potential: a :class:`jaxinfo.potentials.Potential` or a JAX callable
            ``energy_fn(positions, cell) -> scalar`` (positions (n, 3) Å, cell (3, 3) Å, eV).
        kT: thermal energy of the energy term, eV (> 0); e.g. ``ase.units.kB * 600``.
        reference: descriptors ((N, 2k − 1) array) or structures to measure novelty against;
            default: the seeds.
        information: ``"mean"`` or ``"max"`` of δH(new | reference) over the atoms, or
            ``"entropy"`` of the reference together with the new environments (nats).
        information_weight: λ >= 0, weight of the information term.
        saturation: s in nats (> 0) or None: for ``"mean"``/``"max"`` each δH_i is replaced by
            ``s·tanh(δH_i / s)``. Without it δH grows like (descriptor distance)² / 2h² and its
            gradient without bound, so a strong information term can outrun the energy and
            blow the structure apart.
        n_steps: gradient steps per seed (>= 1).
        step_size: mobility, Å²/eV (> 0).
        max_displacement: largest move of one atom in one step, Å (> 0).
        noise: standard deviation of a Gaussian displacement added each step, Å (>= 0).
        cell_step_size: cell mobility, 1/eV (>= 0; 0 keeps the cell fixed).
        max_strain: largest strain component per step (> 0).
        sample_every: emit a frame every this many steps.
        grow_reference: add each emitted frame's environments to the reference.
        rebuild_every: rebuild the neighbour tables every this many steps (and whenever an
            atom moved more than half the potential's skin).
        min_distance: smallest allowed interatomic distance, Å (>= 0).
        h: kernel bandwidth, 1/Å.
        k: descriptor neighbours.
        cutoff: descriptor cutoff, Å.
        seed: random seed of the noise.

    Returns:
        A :class:`GenerationResult` with ``n_steps // sample_every`` frames per seed.

    Raises:
        ValueError: empty seeds, kT <= 0, step sizes <= 0, negative noise, unknown
            information term, a seed already closer than ``min_distance``, cell moves on a
            non-periodic seed, or a neighbour-table overflow of the potential.

    Example:
        >>> from ase.build import bulk
        >>> from jaxinfo.generation import generate_gradient
        >>> from jaxinfo.potentials import SuttonChen
        >>> seed = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        >>> seed.rattle(0.05, seed=0)
        >>> result = generate_gradient(seed, SuttonChen(), kT=0.05, n_steps=4, sample_every=2)
        >>> len(result.frames), result.total_energy_evaluations
        (2, 5)
    """
    start = time.perf_counter()
    config = _config(
        potential,
        kT,
        information,
        information_weight,
        saturation,
        h,
        k,
        cutoff,
        min_distance,
        sample_every,
        rebuild_every,
        grow_reference,
    )
    n_steps = check_count("n_steps", n_steps)
    step_size = check_positive("step_size (Å²/eV)", step_size)
    max_displacement = check_positive("max_displacement (Å)", max_displacement)
    noise = check_positive("noise (Å)", noise, allow_zero=True)
    cell_step_size = check_positive("cell_step_size (1/eV)", cell_step_size, allow_zero=True)
    max_strain = check_positive("max_strain", max_strain)
    seeds = _check_seeds(seeds, periodic_cell=cell_step_size > 0)
    walkers = [_Walker(atoms, index, config) for index, atoms in enumerate(seeds)]
    reference = _plan(seeds, reference, config, n_steps)
    rng = np.random.default_rng(seed)
    history, frames, evals = _History(), [], 0

    for walker in walkers:
        e_seed = None
        for step in range(n_steps + 1):
            if step > 0 and (step % config.rebuild_every == 0 or walker.needs_rebuild()):
                walker.rebuild()
            aux, (g_pos, g_strain) = _evaluate(walker, reference, grad=True)
            evals += 1
            info, energy, d_min, x = _as_floats(aux)
            e_seed = energy if e_seed is None else e_seed
            objective = config.weight * info - (energy - e_seed) / config.kT
            history.add(objective, info, energy, d_min, walker.index, evals, True)
            if step > 0 and step % config.sample_every == 0:
                reference = _emit(
                    frames,
                    walker,
                    reference,
                    config,
                    "gradient",
                    step,
                    objective,
                    info,
                    energy,
                    d_min,
                    evals,
                    x,
                )
            if step == n_steps:
                break
            move = step_size * config.kT * np.asarray(g_pos, dtype=np.float64)
            norms = np.linalg.norm(move, axis=1, keepdims=True)
            move *= np.minimum(1.0, max_displacement / np.maximum(norms, 1e-300))
            if noise > 0:
                move += rng.normal(scale=noise, size=move.shape)
            strain = np.zeros((3, 3))
            if cell_step_size > 0:
                g = np.asarray(g_strain, dtype=np.float64)
                strain = np.clip(
                    cell_step_size * config.kT * 0.5 * (g + g.T), -max_strain, max_strain
                )
            for _ in range(_MAX_HALVINGS + 1):
                deform = np.eye(3) + strain
                positions = walker.positions @ deform + move
                cell = walker.cell @ deform
                if walker.min_distance(positions, cell) >= config.min_distance:
                    walker.positions, walker.cell = positions, cell
                    break
                move, strain = 0.5 * move, 0.5 * strain
    return history.result(frames, evals, config, "gradient", start)


def generate_metropolis(
    seeds,
    potential,
    *,
    kT: float,
    temperature_mc: float = 1.0,
    reference=None,
    information: str = "mean",
    information_weight: float = 1.0,
    saturation: float | None = 10.0,
    n_steps: int = 100,
    displacement: float = 0.05,
    cell_displacement: float = 0.0,
    sample_every: int = 10,
    grow_reference: bool = True,
    rebuild_every: int = 10,
    min_distance: float = 1.5,
    h: float = DEFAULT_BANDWIDTH,
    k: int = DEFAULT_K,
    cutoff: float = DEFAULT_CUTOFF,
    seed: int = 0,
) -> GenerationResult:
    """Generates structures by Metropolis Monte Carlo on ``λ·I − (E − E_seed)/kT``.

    Each proposal displaces every atom by a Gaussian of standard deviation ``displacement``
    (Å) and, with ``cell_displacement > 0``, strains the cell by a symmetric Gaussian strain;
    it is accepted with probability ``min(1, exp(Δobjective / temperature_mc))`` and always
    rejected if two atoms come closer than ``min_distance``. With ``temperature_mc = 1`` and
    ``information_weight = 0`` this is plain Metropolis sampling of the Boltzmann distribution
    at kT. After a table rebuild or a change of the reference (an emitted frame joins it), the
    current state is re-evaluated; these evaluations are counted.

    Args:
        seeds: an ``ase.Atoms`` or a non-empty list of them.
        potential: a :class:`jaxinfo.potentials.Potential` or a JAX callable
            ``energy_fn(positions, cell) -> scalar`` (eV).
        kT: thermal energy of the energy term, eV (> 0).
        temperature_mc: Metropolis temperature on the dimensionless objective (> 0).
        reference: descriptors ((N, 2k − 1) array) or structures; default: the seeds.
        information: ``"mean"``, ``"max"`` or ``"entropy"`` (see :func:`generate_gradient`).
        information_weight: λ >= 0.
        saturation: s in nats or None (see :func:`generate_gradient`).
        n_steps: proposals per seed (>= 1).
        displacement: standard deviation of the atomic moves, Å (> 0).
        cell_displacement: standard deviation of the strain components (>= 0; 0: fixed cell).
            Cell moves carry no volume Jacobian or pressure term: they explore, they do not
            sample an NPT ensemble.
        sample_every: emit the current structure every this many proposals.
        grow_reference: add each emitted frame's environments to the reference.
        rebuild_every: rebuild the neighbour tables every this many proposals (and whenever
            an atom moved more than half the potential's skin).
        min_distance: smallest allowed interatomic distance, Å (>= 0).
        h: kernel bandwidth, 1/Å.
        k: descriptor neighbours.
        cutoff: descriptor cutoff, Å.
        seed: random seed; equal seeds give identical runs.

    Returns:
        A :class:`GenerationResult` (``accepted`` marks accepted proposals).

    Raises:
        ValueError: as :func:`generate_gradient`, and for ``temperature_mc <= 0`` or
            ``displacement <= 0``.
    """
    start = time.perf_counter()
    config = _config(
        potential,
        kT,
        information,
        information_weight,
        saturation,
        h,
        k,
        cutoff,
        min_distance,
        sample_every,
        rebuild_every,
        grow_reference,
    )
    temperature_mc = check_positive("temperature_mc", temperature_mc)
    n_steps = check_count("n_steps", n_steps)
    displacement = check_positive("displacement (Å)", displacement)
    cell_displacement = check_positive("cell_displacement", cell_displacement, allow_zero=True)
    seeds = _check_seeds(seeds, periodic_cell=cell_displacement > 0)
    walkers = [_Walker(atoms, index, config) for index, atoms in enumerate(seeds)]
    reference = _plan(seeds, reference, config, n_steps)
    rng = np.random.default_rng(seed)
    history, frames, evals = _History(), [], 0

    for walker in walkers:
        aux, _ = _evaluate(walker, reference, grad=False)
        evals += 1
        info, energy, d_min, x = _as_floats(aux)
        e_seed = energy

        def objective_of(info, energy, e_seed=e_seed):
            return config.weight * info - (energy - e_seed) / config.kT

        current = objective_of(info, energy)
        history.add(current, info, energy, d_min, walker.index, evals, True)
        for step in range(1, n_steps + 1):
            move = rng.normal(scale=displacement, size=walker.positions.shape)
            strain = np.zeros((3, 3))
            if cell_displacement > 0:
                s = rng.normal(scale=cell_displacement, size=(3, 3))
                strain = 0.5 * (s + s.T)
            u = rng.random()
            deform = np.eye(3) + strain
            positions = walker.positions @ deform + move
            cell = walker.cell @ deform
            accepted = False
            if walker.min_distance(positions, cell) >= config.min_distance:
                aux_new, _ = _evaluate(
                    walker, reference, grad=False, positions=positions, cell=cell
                )
                evals += 1
                new = _as_floats(aux_new)
                proposed = objective_of(new[0], new[1])
                if np.log(max(u, 1e-300)) < (proposed - current) / temperature_mc:
                    accepted = True
                    walker.positions, walker.cell = positions, cell
                    info, energy, d_min, x = new
                    current = proposed
            history.add(current, info, energy, d_min, walker.index, evals, accepted)
            emit = step % config.sample_every == 0
            if emit:
                reference = _emit(
                    frames,
                    walker,
                    reference,
                    config,
                    "metropolis",
                    step,
                    current,
                    info,
                    energy,
                    d_min,
                    evals,
                    x,
                )
            rebuild = step % config.rebuild_every == 0 or walker.needs_rebuild()
            if rebuild:
                walker.rebuild()
            if step < n_steps and (rebuild or (emit and config.grow_reference)):
                aux, _ = _evaluate(walker, reference, grad=False)
                evals += 1
                info, energy, d_min, x = _as_floats(aux)
                current = objective_of(info, energy)
    return history.result(frames, evals, config, "metropolis", start)
