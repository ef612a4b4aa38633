"""Dataset generation by maximising information against a physical energy, as pure steps.

Starting from seed structures, atoms (and optionally the cell) move to raise

    objective = λ · I(new environments) − (E − E_seed) / kT

(:class:`GenerationObjective`: I in nats measures novelty against a growing reference, E in eV
comes from any :class:`jaxinfo.potentials.Potential` or JAX ``energy_fn(positions, cell)``).

:func:`gradient_ascent` (an optax optimiser on the mobility-weighted gradient) and
:func:`metropolis` (Gaussian proposals) return :class:`GenerationFns` ``(allocate, init,
update)`` in the manner of jax-md's ``simulate`` and optax: ``update(state) -> state`` is pure
and runs under ``jax.jit`` and ``jax.lax.scan``. The :class:`GenerationState` carries
positions, cell, the neighbour lists (top-k at every evaluation, so never stale), the growing
:class:`~jaxinfo.objectives.Reference` and the optimiser state. When atoms have moved more than
half a skin since allocation, ``update`` leaves the state unchanged with ``overflow`` set: call
``allocate`` again and go on, as with jax-md's neighbour lists. No step brings two atoms
(periodic images included) closer than ``min_distance``. :func:`generate` is a thin host loop
over the steps that emits a frame every ``sample_every`` steps.

Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from ase.build import bulk
    >>> from jaxinfo.generation import GenerationObjective, gradient_ascent
    >>> from jaxinfo.objectives import reference_init
    >>> from jaxinfo.potentials import SuttonChen
    >>> atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    >>> atoms.rattle(0.05, seed=0)
    >>> objective = GenerationObjective(SuttonChen(), kT=0.05, k=8, cutoff=4.0)
    >>> fns = gradient_ascent(objective)
    >>> reference = reference_init(jnp.zeros((0, 15)), 32, objective.h)
    >>> neighbours = fns.allocate(atoms.positions, atoms.cell.array, atoms.pbc)
    >>> state = fns.init(atoms.positions, atoms.cell.array, neighbours, reference)
    >>> state, _ = jax.lax.scan(lambda s, _: (fns.update(s), None), state, length=3)
    >>> int(state.step), bool(state.overflow)
    (3, False)
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
import optax
from ase import Atoms

from jaxinfo._validation import (
    check_count,
    check_positive,
)
from jaxinfo.batching import _as_structure_list
from jaxinfo.batching import descriptors as dataset_descriptors
from jaxinfo.descriptor import DEFAULT_CUTOFF, DEFAULT_K, structure_descriptors
from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.neighbours import allocate_lists, neighbour_list
from jaxinfo.objectives import (
    DESCRIPTOR_SKIN,
    INFORMATION_KINDS,
    Reference,
    check_information_settings,
    information,
    planned_reference,
    reference_add,
)
from jaxinfo.potentials import Potential, as_potential, minimum_distance

__all__ = [
    "GenerationFns",
    "GenerationObjective",
    "GenerationResult",
    "GenerationState",
    "generate",
    "gradient_ascent",
    "metropolis",
]

_MAX_HALVINGS = 10


@dataclasses.dataclass
class GenerationResult:
    """Frames and per-step history of a generation run.

    Per-step arrays have ``n_steps + 1`` entries per walker: the start and each step (for
    Metropolis, the state after the accept/reject).

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
        total_energy_evaluations: potential evaluations spent in all: one at the start of a
            walker, one per gradient step or per Metropolis proposal within the limits, and
            for Metropolis one re-evaluation each time the reference grows.
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


@dataclasses.dataclass(frozen=True)
class GenerationObjective:
    """``λ·I − (E − E_seed)/kT`` of a structure (hashable: a static argument of ``jax.jit``).

    Attributes:
        potential: a :class:`jaxinfo.potentials.Potential` or a JAX callable
            ``energy_fn(positions, cell) -> scalar`` (positions (n, 3) Å, cell (3, 3) Å, eV).
        kT: thermal energy of the energy term, eV (> 0); e.g. ``ase.units.kB * 600``.
        information: ``"mean"`` or ``"max"`` of δH(new | reference) over the atoms, or
            ``"entropy"`` of the reference together with the new environments (nats).
        weight: λ >= 0, weight of the information term.
        saturation: s in nats (> 0) or None: for ``"mean"``/``"max"`` each δH_i is replaced by
            ``s·tanh(δH_i / s)``. Without it δH grows like (descriptor distance)² / 2h² and its
            gradient without bound, so a strong information term can outrun the energy and
            blow the structure apart.
        h: kernel bandwidth, 1/Å.
        k: descriptor neighbours.
        cutoff: descriptor cutoff, Å.
    """

    potential: Potential | Callable
    kT: float
    information: str = "mean"
    weight: float = 1.0
    saturation: float | None = 10.0
    h: float = DEFAULT_BANDWIDTH
    k: int = DEFAULT_K
    cutoff: float = DEFAULT_CUTOFF

    def __post_init__(self):
        if self.information not in INFORMATION_KINDS:
            raise ValueError(
                f"information must be one of {INFORMATION_KINDS}, got {self.information!r}"
            )
        check_information_settings(self)
        checked = dict(
            potential=as_potential(self.potential),
            kT=check_positive("kT (eV)", self.kT),
            weight=check_positive("weight", self.weight, allow_zero=True),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def neighbour_lists(self):
        """The neighbour-list functions ``(descriptor, potential or None)``."""
        descriptor = neighbour_list(self.k, self.cutoff, skin=DESCRIPTOR_SKIN)
        return descriptor, self.potential.neighbour_list()

    def step_limit(self, max_strain: float = 0.0) -> float:
        """Largest atomic move (Å) that keeps freshly allocated lists valid for one step (with a
        10 % margin for rounding)."""
        skins = [(DESCRIPTOR_SKIN, self.cutoff + DESCRIPTOR_SKIN)]
        if self.potential.cutoff is not None:
            skins.append((self.potential.skin, self.potential.table_cutoff))
        return min(0.45 * (skin - 3.0 * max_strain * radius) for skin, radius in skins)

    def allocate(self, positions, cell, pbc, like=None, *, cell_moves=False):
        """Neighbour lists ``(descriptor, potential or None)`` on the host (``like``: lists
        whose capacities are kept when they suffice; ``cell_moves`` requires full pbc)."""
        if cell_moves and not np.all(pbc):
            raise ValueError("cell moves need a structure periodic along all three axes")
        return allocate_lists(self.neighbour_lists(), positions, cell, pbc, like)

    def evaluate(self, positions, strain, cell, neighbours, reference: Reference):
        """``(λ·I − E/kT, evaluation)`` at positions and cell deformed by ``I + sym(strain)``.

        Differentiable in positions (n, 3) Å and strain (3, 3); the lists are updated here.
        ``evaluation`` is a dict of ``information``, ``energy``, ``min_distance``,
        ``descriptors``, the updated ``neighbours`` and ``overflow``.
        """
        deform = jnp.eye(3, dtype=positions.dtype) + 0.5 * (strain + strain.T)
        positions, cell = positions @ deform, cell @ deform
        desc_list = self.neighbour_lists()[0].update(positions, cell, neighbours[0])
        energy, stale = self.potential.listed_energy(positions, cell, neighbours[1])
        x = structure_descriptors(positions, cell, desc_list.table, self.cutoff)
        info = information(x, reference, self.h, self.information, self.saturation)
        evaluation = dict(
            information=info, energy=energy, descriptors=x,
            min_distance=minimum_distance(positions, cell, desc_list.table),
            neighbours=(desc_list, neighbours[1]), overflow=desc_list.overflow | stale,
        )  # fmt: skip
        return self.weight * info - energy / self.kT, evaluation


class GenerationState(NamedTuple):
    """State of the generation steps (a pytree).

    Attributes:
        positions: (n_atoms, 3) Å.
        cell: (3, 3) rows, Å.
        neighbours: ``(descriptor, potential or None)`` :class:`~jaxinfo.neighbours.NeighbourList`.
        reference: the :class:`~jaxinfo.objectives.Reference` novelty is measured against.
        objective: λ·I − (E − E_seed)/kT at ``positions``, dimensionless.
        information: I at ``positions``, nats.
        energy: E at ``positions``, eV.
        seed_energy: E_seed, eV (the energy at ``init``).
        min_distance: shortest interatomic distance, Å.
        descriptors: (n_atoms, 2k − 1) at ``positions``, 1/Å.
        gradient: ``{"positions", "strain"}`` ∂objective at ``positions`` (gradient ascent).
        optimizer_state: the optax state (gradient ascent).
        key: PRNG key; step t draws from ``jax.random.fold_in(key, t)``.
        step: int32, steps taken.
        evaluations: int32, energy evaluations so far.
        accepted: bool, whether the last step moved the structure.
        overflow: bool, the last step was not taken: re-allocate the lists and go on.
    """

    positions: jax.Array
    cell: jax.Array
    neighbours: tuple
    reference: Reference
    objective: jax.Array
    information: jax.Array
    energy: jax.Array
    seed_energy: jax.Array
    min_distance: jax.Array
    descriptors: jax.Array
    gradient: object
    optimizer_state: object
    key: jax.Array
    step: jax.Array
    evaluations: jax.Array
    accepted: jax.Array
    overflow: jax.Array


class GenerationFns(NamedTuple):
    """The steps of one method, in the manner of jax-md's ``simulate`` and optax.

    Attributes:
        allocate: ``allocate(positions, cell, pbc, like=None)`` (host): the neighbour lists
            ``(descriptor, potential or None)``; ``like``: lists whose capacities are kept.
        init: ``init(positions, cell, neighbours, reference, key=None) -> GenerationState``.
        update: ``update(state) -> GenerationState``; ``init`` and ``update`` are pure.
        objective: the :class:`GenerationObjective`.
        method: ``"gradient"`` or ``"metropolis"``.
        min_distance: the enforced shortest interatomic distance, Å.
        grow_every: steps between additions to the reference (None: fixed reference).
    """

    allocate: Callable
    init: Callable
    update: Callable
    objective: GenerationObjective
    method: str
    min_distance: float
    grow_every: int | None


def _check_guards(min_distance, grow_every):
    min_distance = check_positive("min_distance (Å)", min_distance, allow_zero=True)
    return min_distance, None if grow_every is None else check_count("grow_every", grow_every)


def _deformed(positions, cell, move, strain):
    deform = jnp.eye(3, dtype=positions.dtype) + strain
    return positions @ deform + move, cell @ deform


def _symmetric(strain):
    return 0.5 * (strain + strain.T)


def _cap_norms(move, limit):
    norms = jnp.linalg.norm(move, axis=1, keepdims=True)
    return move * jnp.minimum(1.0, limit / jnp.maximum(norms, jnp.finfo(move.dtype).tiny))


def _with(state: GenerationState, evaluation: dict, objective: GenerationObjective, **kw):
    """The state at a new evaluation (objective measured from the seed energy)."""
    value = objective.weight * evaluation["information"]
    value = value - (evaluation["energy"] - state.seed_energy) / objective.kT
    fields = {name: v for name, v in evaluation.items() if name != "overflow"}
    return state._replace(objective=value, **fields, **kw)


def _grown(state: GenerationState, grow_every, h) -> GenerationState:
    """Adds the current environments to the reference when ``state.step`` is a multiple of
    ``grow_every``."""
    if grow_every is None:
        return state
    reference = jax.lax.cond(
        state.step % grow_every == 0,
        lambda r: reference_add(r, state.descriptors, h),
        lambda r: r,
        state.reference,
    )
    return state._replace(reference=reference)


def _unless_overflow(old: GenerationState, new: GenerationState, overflow):
    kept = old._replace(overflow=jnp.asarray(True), accepted=jnp.asarray(False))
    return jax.tree.map(lambda a, b: a if a is b else jnp.where(overflow, a, b), kept, new)


def _initial_state(objective, positions, cell, neighbours, reference, key, with_grad):
    positions = jnp.asarray(positions)
    if not jnp.issubdtype(positions.dtype, jnp.floating):
        positions = positions.astype(float)
    cell = jnp.asarray(cell, positions.dtype)
    strain = jnp.zeros((3, 3), positions.dtype)
    args = (positions, strain, cell, neighbours, reference)
    gradient = None
    if with_grad:
        (_, evaluation), (g_pos, g_strain) = jax.value_and_grad(
            objective.evaluate, argnums=(0, 1), has_aux=True
        )(*args)
        gradient = {"positions": g_pos, "strain": g_strain}
    else:
        _, evaluation = objective.evaluate(*args)
    state = GenerationState(
        positions=positions, cell=cell, neighbours=neighbours, reference=reference,
        objective=None, information=None, energy=None, seed_energy=evaluation["energy"],
        min_distance=None, descriptors=None, gradient=gradient, optimizer_state=None,
        key=jax.random.key(0) if key is None else key, step=jnp.zeros((), jnp.int32),
        evaluations=jnp.ones((), jnp.int32), accepted=jnp.asarray(True),
        overflow=evaluation["overflow"],
    )  # fmt: skip
    return _with(state, evaluation, objective)


@functools.lru_cache(maxsize=32)  # same settings, same functions: compiled code is reused
def gradient_ascent(
    objective: GenerationObjective,
    *,
    optimizer: optax.GradientTransformation | None = None,
    step_size: float = 0.01,
    max_displacement: float = 0.1,
    noise: float = 0.0,
    cell_step_size: float = 0.0,
    max_strain: float = 0.01,
    min_distance: float = 1.5,
    grow_every: int | None = None,
) -> GenerationFns:
    """Gradient ascent on the objective as ``(allocate, init, update)``.

    A step feeds the mobility-weighted gradient ``{"positions": step_size·kT·∂objective/∂r,
    "strain": cell_step_size·kT·∂objective/∂ε}`` (negated: optax minimises) to ``optimizer``
    (default ``optax.sgd(1.0)``: atom i moves by ``step_size · (F_i + λ kT ∇_i I)``, a steepest
    descent on ``E − λ kT I`` with mobility ``step_size``). Moves are capped at
    ``max_displacement`` per atom, plus Gaussian ``noise`` (the sum capped at 0.45 of the lists'
    skin); the strain is symmetrised and clipped at ``max_strain`` per component, the atoms
    following the cell affinely. Steps that would bring atoms closer than ``min_distance`` are
    halved until they do not (after 10 halvings the atoms stay put).

    Args:
        objective: the :class:`GenerationObjective`.
        optimizer: an optax ``GradientTransformation`` (e.g. ``optax.adam(0.02)``); it sees
            the mobility-weighted gradient, so ``step_size`` and ``cell_step_size`` act as
            preconditioners (``cell_step_size = 0`` keeps the cell fixed).
        step_size: mobility, Å²/eV (> 0).
        max_displacement: largest deterministic move of one atom in one step, Å (> 0).
        noise: standard deviation of a Gaussian displacement added each step, Å (>= 0).
        cell_step_size: cell mobility, 1/eV (>= 0; 0 keeps the cell fixed).
        max_strain: largest strain component per step (> 0).
        min_distance: smallest allowed interatomic distance, Å (>= 0).
        grow_every: every this many steps the current environments join the reference
            (None: a fixed reference). The step's gradient was taken before they joined.

    Returns:
        :class:`GenerationFns`.

    Raises:
        ValueError: step sizes <= 0, negative noise, or ``max_displacement`` beyond 0.45 of the
            neighbour lists' skin (less the strain's share).
    """
    step_size = check_positive("step_size (Å²/eV)", step_size)
    max_displacement = check_positive("max_displacement (Å)", max_displacement)
    noise = check_positive("noise (Å)", noise, allow_zero=True)
    cell_step_size = check_positive("cell_step_size (1/eV)", cell_step_size, allow_zero=True)
    max_strain = check_positive("max_strain", max_strain) if cell_step_size > 0 else 0.0
    min_distance, grow_every = _check_guards(min_distance, grow_every)
    limit = objective.step_limit(max_strain)
    if max_displacement > limit:
        raise ValueError(
            f"max_displacement ({max_displacement} Å) must be <= {limit:.3g} Å: 0.45 of the "
            "neighbour lists' skin, less the strain's share"
        )
    optimizer = optax.sgd(1.0) if optimizer is None else optimizer
    mobility = {"positions": step_size * objective.kT, "strain": cell_step_size * objective.kT}
    value_and_grad = jax.value_and_grad(objective.evaluate, argnums=(0, 1), has_aux=True)

    def init(positions, cell, neighbours, reference, key=None):
        state = _initial_state(objective, positions, cell, neighbours, reference, key, True)
        params = {"positions": state.positions, "strain": jnp.zeros_like(state.cell)}
        return state._replace(optimizer_state=optimizer.init(params))

    def update(state: GenerationState) -> GenerationState:
        dtype = state.positions.dtype
        loss_grad = jax.tree.map(lambda g, m: -m * g, state.gradient, mobility)
        params = {"positions": state.positions, "strain": jnp.zeros_like(state.cell)}
        updates, opt_state = optimizer.update(loss_grad, state.optimizer_state, params)
        move = _cap_norms(updates["positions"], max_displacement)
        if noise > 0:
            key = jax.random.fold_in(state.key, state.step)
            move = move + noise * jax.random.normal(key, move.shape, dtype)
        move = _cap_norms(move, limit)
        strain = jnp.zeros((3, 3), dtype)
        if cell_step_size > 0:
            strain = jnp.clip(_symmetric(updates["strain"]), -max_strain, max_strain)

        def too_close(halvings):
            scale = jnp.asarray(0.5, dtype) ** halvings
            p, c = _deformed(state.positions, state.cell, scale * move, scale * strain)
            return minimum_distance(p, c, state.neighbours[0].candidates) < min_distance

        halvings = jax.lax.while_loop(
            lambda j: (j <= _MAX_HALVINGS) & too_close(j), lambda j: j + 1, 0
        )
        scale = jnp.where(halvings <= _MAX_HALVINGS, jnp.asarray(0.5, dtype) ** halvings, 0.0)
        positions, cell = _deformed(state.positions, state.cell, scale * move, scale * strain)
        zero = jnp.zeros((3, 3), dtype)
        (_, evaluation), (g_pos, g_strain) = value_and_grad(
            positions, zero, cell, state.neighbours, state.reference
        )
        new = _with(
            state, evaluation, objective, positions=positions, cell=cell,
            gradient={"positions": g_pos, "strain": g_strain}, optimizer_state=opt_state,
            step=state.step + 1, evaluations=state.evaluations + 1, accepted=jnp.asarray(True),
        )  # fmt: skip
        return _unless_overflow(state, _grown(new, grow_every, objective.h), evaluation["overflow"])

    allocate = functools.partial(objective.allocate, cell_moves=cell_step_size > 0)
    return GenerationFns(allocate, init, update, objective, "gradient", min_distance, grow_every)


@functools.lru_cache(maxsize=32)
def metropolis(
    objective: GenerationObjective,
    *,
    temperature_mc: float = 1.0,
    displacement: float = 0.05,
    cell_displacement: float = 0.0,
    min_distance: float = 1.5,
    grow_every: int | None = None,
) -> GenerationFns:
    """Metropolis Monte Carlo on the objective as ``(allocate, init, update)``.

    Each proposal displaces every atom by a Gaussian of standard deviation ``displacement``
    (Å) and, with ``cell_displacement > 0``, strains the cell by a symmetric Gaussian strain;
    it is accepted with probability ``min(1, exp(Δobjective / temperature_mc))``. Proposals
    that bring two atoms closer than ``min_distance``, or move an atom by more than 0.45 of the
    lists' skin, are rejected without an evaluation. With ``temperature_mc = 1`` and weight 0
    this samples the Boltzmann distribution at kT (cell moves carry no volume Jacobian or
    pressure term: they explore, they do not sample an NPT ensemble). When the reference
    grows (at the end of a step), the next step first re-evaluates the current state against it
    (one evaluation).

    Args:
        objective: the :class:`GenerationObjective`.
        temperature_mc: Metropolis temperature on the dimensionless objective (> 0).
        displacement: standard deviation of the atomic moves, Å (> 0).
        cell_displacement: standard deviation of the strain components (>= 0; 0: fixed cell).
        min_distance: smallest allowed interatomic distance, Å (>= 0).
        grow_every: every this many steps the current environments join the reference.

    Returns:
        :class:`GenerationFns`.
    """
    temperature_mc = check_positive("temperature_mc", temperature_mc)
    displacement = check_positive("displacement (Å)", displacement)
    cell_displacement = check_positive("cell_displacement", cell_displacement, allow_zero=True)
    min_distance, grow_every = _check_guards(min_distance, grow_every)
    radius = max(objective.cutoff + DESCRIPTOR_SKIN, objective.potential.table_cutoff or 0.0)
    min_skin = 2.0 * objective.step_limit()

    def init(positions, cell, neighbours, reference, key=None):
        return _initial_state(objective, positions, cell, neighbours, reference, key, False)

    def reevaluate(state):
        zero = jnp.zeros((3, 3), state.positions.dtype)
        _, again = objective.evaluate(
            state.positions, zero, state.cell, state.neighbours, state.reference
        )
        return _with(state, again, objective, evaluations=state.evaluations + 1)

    def update(state: GenerationState) -> GenerationState:
        if grow_every is not None:  # the reference grew at the end of the last step
            grown = (state.step > 0) & (state.step % grow_every == 0)
            state = jax.lax.cond(grown, reevaluate, lambda s: s, state)
        dtype = state.positions.dtype
        keys = jax.random.split(jax.random.fold_in(state.key, state.step), 3)
        move = displacement * jax.random.normal(keys[0], state.positions.shape, dtype)
        strain = jnp.zeros((3, 3), dtype)
        if cell_displacement > 0:
            strain = _symmetric(cell_displacement * jax.random.normal(keys[1], (3, 3), dtype))
        positions, cell = _deformed(state.positions, state.cell, move, strain)
        largest = jnp.sqrt(jnp.max(jnp.sum(move * move, axis=1)))
        allowed = 2.0 * largest + jnp.linalg.norm(strain) * radius <= min_skin
        distance = minimum_distance(positions, cell, state.neighbours[0].candidates)
        allowed = allowed & (distance >= min_distance)
        args = (positions, jnp.zeros((3, 3), dtype), cell, state.neighbours, state.reference)
        shapes = jax.eval_shape(objective.evaluate, *args)
        value, evaluation = jax.lax.cond(
            allowed,
            lambda: objective.evaluate(*args),
            lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
        )
        proposed = value + state.seed_energy / objective.kT
        log_u = jnp.log(jax.random.uniform(keys[2], (), dtype, minval=jnp.finfo(dtype).tiny))
        accept = allowed & (log_u < (proposed - state.objective) / temperature_mc)
        moved = _with(state, evaluation, objective, positions=positions, cell=cell)
        new = jax.tree.map(lambda a, b: a if a is b else jnp.where(accept, a, b), moved, state)
        new = new._replace(
            step=state.step + 1,
            evaluations=state.evaluations + allowed.astype(jnp.int32),
            accepted=accept,
        )
        new = _grown(new, grow_every, objective.h)
        return _unless_overflow(state, new, allowed & evaluation["overflow"])

    allocate = functools.partial(objective.allocate, cell_moves=cell_displacement > 0)
    return GenerationFns(allocate, init, update, objective, "metropolis", min_distance, grow_every)


# ------------------------------------------------------------------------------------------
# Host drivers: thin loops over the steps
# ------------------------------------------------------------------------------------------

_RECORDED = ("objective", "information", "energy", "min_distance", "evaluations", "accepted")


def _initial_reference(seeds, reference, objective: GenerationObjective, n_new_rows, dtype):
    reference = seeds if reference is None else reference
    if isinstance(reference, Atoms) or (
        isinstance(reference, list | tuple) and reference and isinstance(reference[0], Atoms)
    ):
        reference = dataset_descriptors(reference, objective.k, objective.cutoff)
    return planned_reference(reference, 2 * objective.k - 1, n_new_rows, objective.h, dtype)


def _frame(atoms, state, method, walker, spent, objective) -> Atoms:
    frame = Atoms(numbers=atoms.numbers, positions=np.asarray(state.positions, np.float64),
                  cell=np.asarray(state.cell, np.float64), pbc=atoms.pbc)  # fmt: skip
    if frame.pbc.any():
        frame.wrap()
    frame.info.update(
        method=method, walker=walker, step=int(state.step), objective=float(state.objective),
        information=float(state.information), energy=float(state.energy),
        min_distance=float(state.min_distance),
        energy_evaluations=spent + int(state.evaluations),
        potential=type(objective.potential).__name__,
    )  # fmt: skip
    return frame


def generate(
    seeds, steps: GenerationFns, *, n_steps: int, sample_every: int = 10, reference=None,
    seed: int = 0,
) -> GenerationResult:  # fmt: skip
    """Runs ``steps`` (from :func:`gradient_ascent` or :func:`metropolis`) on each seed in turn
    for ``n_steps`` steps, emitting the current structure every ``sample_every`` steps: a thin
    host loop over the jitted ``update`` that re-allocates the lists when they overflow.

    Args:
        seeds: an ``ase.Atoms`` or a non-empty list of them (starting structures).
        steps: the :class:`GenerationFns` of a method; its ``grow_every`` (e.g. equal to
            ``sample_every``) makes the reference grow as frames are generated.
        n_steps: steps per seed (>= 1).
        sample_every: emit a frame every this many steps (>= 1).
        reference: descriptors ((N, 2k − 1) array) or structures to measure novelty against;
            default: the seeds. The reference continues from one seed to the next.
        seed: random seed (noise and proposals); equal seeds give identical runs.

    Returns:
        A :class:`GenerationResult` with ``n_steps // sample_every`` frames per seed.

    Raises:
        ValueError: empty or malformed seeds, a seed already closer than the steps'
            ``min_distance``, cell moves on a non-periodic seed, a reference of the wrong width.

    Example:
        >>> from ase import units
        >>> from ase.build import bulk
        >>> from jaxinfo.generation import GenerationObjective, generate, gradient_ascent
        >>> from jaxinfo.potentials import SuttonChen
        >>> seed = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        >>> seed.rattle(0.05, seed=0)
        >>> objective = GenerationObjective(SuttonChen(), kT=units.kB * 600, weight=3.0)
        >>> steps = gradient_ascent(objective, step_size=0.05, grow_every=2)
        >>> result = generate(seed, steps, n_steps=4, sample_every=2)
        >>> len(result.frames), result.total_energy_evaluations
        (2, 5)
    """
    start = time.perf_counter()
    if not isinstance(steps, GenerationFns):
        raise ValueError(f"steps must come from gradient_ascent or metropolis, got {steps!r}")
    seeds = _as_structure_list(seeds)  # an empty seed fails in allocate, with its index
    if not seeds:
        raise ValueError("seeds is empty: give at least one starting structure")
    n_steps = check_count("n_steps", n_steps)
    sample_every = check_count("sample_every", sample_every)
    objective, min_distance = steps.objective, steps.min_distance
    dtype = jnp.zeros(()).dtype
    n_new = sum(len(a) for a in seeds) * (n_steps // steps.grow_every if steps.grow_every else 0)
    reference = _initial_reference(seeds, reference, objective, n_new, dtype)
    init, update = jax.jit(steps.init), jax.jit(steps.update)  # shared with any jit of them
    history, frames, spent, lists = [], [], 0, None
    for index, atoms in enumerate(seeds):
        try:
            lists = steps.allocate(atoms.positions, atoms.cell.array, atoms.pbc, like=lists)
        except ValueError as error:
            raise ValueError(f"seed {index}: {error}") from None
        d_min = float(minimum_distance(atoms.positions, atoms.cell.array, lists[0].candidates))
        if d_min < min_distance:
            raise ValueError(
                f"seed {index} already has atoms {d_min:.3f} Å apart, closer than "
                f"min_distance={min_distance} Å"
            )
        positions, cell = (jnp.asarray(a, dtype) for a in (atoms.positions, atoms.cell.array))
        state = init(
            positions, cell, lists, reference, jax.random.fold_in(jax.random.key(seed), index)
        )
        records, fresh = [state], True
        while int(state.step) < n_steps:
            state = update(state)
            if bool(state.overflow):  # the step was not taken: re-allocate and redo it
                if fresh:
                    raise RuntimeError("a step moved atoms by more than half the neighbour skin")
                positions, cell = np.asarray(state.positions), np.asarray(state.cell)
                lists = steps.allocate(positions, cell, atoms.pbc, like=state.neighbours)
                state, fresh = state._replace(neighbours=lists, overflow=jnp.asarray(False)), True
                continue
            records.append(state)
            fresh = False
            if int(state.step) % sample_every == 0:
                frames.append(_frame(atoms, state, steps.method, index, spent, objective))
        history += [(index, spent, *(getattr(r, name) for name in _RECORDED)) for r in records]
        spent += int(state.evaluations)
        reference = state.reference
    walker, offset, *columns = (np.array(column) for column in zip(*history, strict=True))
    values = {name: v.astype(np.float64) for name, v in zip(_RECORDED, columns, strict=True)}
    return GenerationResult(
        frames=frames,
        **{name: values[name] for name in ("objective", "information", "energy", "min_distance")},
        walker=walker.astype(np.int64),
        energy_evaluations=(offset + values["evaluations"]).astype(np.int64),
        accepted=values["accepted"].astype(bool),
        total_energy_evaluations=spent,
        min_distance_limit=min_distance,
        method=steps.method,
        wall_time=time.perf_counter() - start,
    )
