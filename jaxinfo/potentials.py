"""Small interatomic potentials as pure JAX functions (energies in eV, lengths in Å).

Each potential is a frozen (hashable) dataclass with a pure, differentiable
``energy(positions, cell, table) -> scalar`` whose table is the ``candidates`` of the list
from :meth:`Potential.neighbour_list`: every neighbour within ``cutoff + skin``, valid while
no atom has moved more than ``skin / 2`` (the loops in :mod:`jaxinfo.generation` and
:mod:`jaxinfo.biased_md` check the list's ``stale`` flag under jit and re-allocate on the host
when it trips). Terms are switched off between ``onset`` and ``cutoff`` by
:func:`smooth_switch`, so energies and forces are continuous.

:class:`LennardJones`, :class:`Morse` and :class:`SuttonChen` default to published Cu
parameters; :class:`EnergyFunction` wraps any JAX ``energy_fn(positions, cell) -> scalar`` (eV).

jax-md (the optional extra ``jaxinfo[md]``): its pair energies and neighbour lists use the
minimum image, wrong for cells shorter than twice the cutoff; use its pair *functions* on this
library's explicit-image tables instead (``docs/design.md``, section jax-md).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxinfo._validation import check_cutoff, check_geometry, check_positive
from jaxinfo.descriptor import neighbour_vectors
from jaxinfo.neighbours import NeighbourTable, neighbour_list

__all__ = [
    "EnergyFunction",
    "LennardJones",
    "Morse",
    "Potential",
    "SuttonChen",
    "as_potential",
    "energy_and_forces",
    "minimum_distance",
    "neighbour_distances",
    "smooth_switch",
]

DEFAULT_SKIN = 0.5


def smooth_switch(r, onset: float, cutoff: float):
    """C1 switching function S(r) of jax-md: 1 below ``onset``, 0 from ``cutoff`` on (r in Å),
    ``(rc² − r²)² (rc² + 2r² − 3 ron²) / (rc² − ron²)³`` in between.

    Args:
        r: array of distances, Å.
        onset: distance where the switch starts, Å (0 <= onset < cutoff).
        cutoff: distance where the switch reaches zero, Å.

    Returns:
        Array of the shape of ``r``, values in [0, 1].
    """
    r2, rc2, ron2 = r * r, cutoff * cutoff, onset * onset
    middle = (rc2 - r2) ** 2 * (rc2 + 2.0 * r2 - 3.0 * ron2) / (rc2 - ron2) ** 3
    return jnp.where(r < onset, 1.0, jnp.where(r < cutoff, middle, 0.0))


def neighbour_distances(positions, cell, table: NeighbourTable):
    """``(distance, mask)`` of a table's neighbours at positions (n_atoms, 3) Å and cell (3, 3)
    rows Å: (n_atoms, k) distances in Å (1.0 in empty slots, with zero gradient) and the
    (n_atoms, k) bool mask of filled slots."""
    vectors = neighbour_vectors(positions, cell, table)
    mask = jnp.asarray(table.mask)
    squared = jnp.where(mask, jnp.sum(vectors * vectors, axis=-1), 1.0)
    return jnp.sqrt(squared), mask


def minimum_distance(positions, cell, table: NeighbourTable):
    """Shortest interatomic distance in Å (periodic images included) among the pairs of a
    table that holds each atom's nearest neighbour (``inf`` when it is empty); positions and
    cell as in :func:`neighbour_distances`."""
    distance, mask = neighbour_distances(positions, cell, table)
    return jnp.min(jnp.where(mask, distance, jnp.inf))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Potential:
    """Base class: a pure energy function plus the plan of its neighbour table.

    Subclasses implement :meth:`energy`. Instances are hashable, so they can be static
    arguments of ``jax.jit``.

    Attributes:
        cutoff: interaction cutoff in Å (None: the potential needs no neighbour table).
        skin: extra table radius in Å; the table stays valid while atoms move < skin / 2.
    """

    cutoff: float | None = None
    skin: float = DEFAULT_SKIN

    def energy(self, positions, cell, table: NeighbourTable | None):
        """Potential energy in eV (pure, differentiable in positions and cell).

        Args:
            positions: (n_atoms, 3) Cartesian positions, Å.
            cell: (3, 3) lattice vectors as rows, Å.
            table: every neighbour within ``cutoff + skin``: the ``candidates`` of a list from
                :meth:`neighbour_list` (None when ``cutoff`` is None).

        Returns:
            Scalar array, eV.
        """
        raise NotImplementedError

    def neighbour_list(self):
        """Functions of a :func:`jaxinfo.neighbours.neighbour_list` for this potential (None
        without a cutoff): its ``candidates`` are a table :meth:`energy` accepts, valid while
        ``stale`` is False, so loops under ``jax.jit`` need no host rebuild."""
        return None if self.cutoff is None else neighbour_list(1, self.cutoff, skin=self.skin)

    def listed_energy(self, positions, cell, neighbours):
        """``(energy, stale)``: :meth:`energy` on the candidates of a list from
        :meth:`neighbour_list` (None without a cutoff) and whether that list is stale here."""
        fns = self.neighbour_list()
        if fns is None:
            return self.energy(positions, cell, None), jnp.zeros((), bool)
        stale = fns.stale(positions, cell, neighbours)
        return self.energy(positions, cell, neighbours.candidates), stale

    @property
    def table_cutoff(self) -> float | None:
        """Radius of the neighbour table, ``cutoff + skin`` in Å (None without a cutoff)."""
        return None if self.cutoff is None else self.cutoff + self.skin

    def __post_init__(self):
        if self.cutoff is not None:
            object.__setattr__(self, "cutoff", check_cutoff(self.cutoff))
        skin = float(self.skin)
        if not np.isfinite(skin) or skin < 0:
            raise ValueError(f"skin must be a finite number >= 0 (Å), got {self.skin!r}")
        object.__setattr__(self, "skin", skin)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Switched(Potential):
    cutoff: float = 6.0
    onset: float = 5.0

    def __post_init__(self):
        super().__post_init__()
        if not (0.0 <= float(self.onset) < self.cutoff):
            raise ValueError(
                f"onset must satisfy 0 <= onset < cutoff ({self.cutoff} Å), got {self.onset}"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class _PairPotential(_Switched):
    def pair_energy(self, r):
        """Unswitched pair energy φ(r) in eV for distances r in Å."""
        raise NotImplementedError

    def energy(self, positions, cell, table):
        distance, mask = neighbour_distances(positions, cell, table)
        inside = mask & (distance < self.cutoff)
        safe = jnp.where(inside, distance, self.cutoff)
        terms = self.pair_energy(safe) * smooth_switch(safe, self.onset, self.cutoff)
        # Every pair appears twice in a full table (i -> j and j -> i).
        return 0.5 * jnp.sum(jnp.where(inside, terms, 0.0))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LennardJones(_PairPotential):
    """Lennard-Jones pair potential 4ε[(σ/r)^12 − (σ/r)^6], smoothly switched off.

    Defaults are the Cu parameters of Halicioglu & Pound, Phys. Status Solidi A 30, 619
    (1975); dimer minimum at 2^(1/6) σ = 2.624 Å.

    Attributes:
        epsilon: well depth ε, eV.
        sigma: σ, Å (dimer minimum at 2^(1/6) σ).
        cutoff: distance where the energy reaches zero, Å (default 6.0).
        onset: start of the smooth switch, Å (default 5.0; keep it beyond the minimum).
        skin: extra table radius, Å.

    Example:
        >>> from ase.build import bulk
        >>> from jaxinfo.potentials import LennardJones, energy_and_forces
        >>> e, f = energy_and_forces(LennardJones(), bulk("Cu", "fcc", a=3.61, cubic=True))
        >>> f.shape
        (4, 3)
    """

    epsilon: float = 0.4093
    sigma: float = 2.338

    def __post_init__(self):
        super().__post_init__()
        check_positive("epsilon", self.epsilon)
        check_positive("sigma", self.sigma)

    def pair_energy(self, r):
        s6 = (self.sigma / r) ** 6
        return 4.0 * self.epsilon * (s6 * s6 - s6)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Morse(_PairPotential):
    """Morse pair potential D[(1 − exp(−α(r − r0)))² − 1], smoothly switched off.

    Defaults are the Cu parameters of Girifalco & Weizer, Phys. Rev. 114, 687 (1959).

    Attributes:
        depth: well depth D, eV.
        alpha: α, 1/Å.
        r0: equilibrium distance, Å (dimer minimum).
        cutoff: distance where the energy reaches zero, Å (default 6.0).
        onset: start of the smooth switch, Å (default 5.0).
        skin: extra table radius, Å.
    """

    depth: float = 0.3429
    alpha: float = 1.3588
    r0: float = 2.866

    def __post_init__(self):
        super().__post_init__()
        check_positive("depth", self.depth)
        check_positive("alpha", self.alpha)
        check_positive("r0", self.r0)

    def pair_energy(self, r):
        decay = jnp.exp(-self.alpha * (r - self.r0))
        return self.depth * ((1.0 - decay) ** 2 - 1.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SuttonChen(_Switched):
    """Sutton–Chen analytic embedded-atom potential, smoothly switched off.

    ``E = ε Σ_i [½ Σ_j (a/r_ij)^n S(r_ij) − c sqrt(ρ_i)]`` with
    ``ρ_i = Σ_j (a/r_ij)^m S(r_ij)²`` (S² keeps sqrt(ρ) smooth for atoms with few
    neighbours). Defaults are the Cu parameters of Sutton & Chen, Phil. Mag. Lett. 61, 139
    (1990); with the default switch (5 → 6 Å) fcc Cu has its minimum at a = 3.61 Å and
    E = −3.39 eV/atom (−3.50 untruncated).

    Attributes:
        epsilon: energy scale ε, eV.
        c: dimensionless embedding strength.
        a: length scale, Å (the fcc lattice constant of the fit).
        n: repulsive exponent.
        m: density exponent.
        cutoff: distance where every term reaches zero, Å (default 6.0).
        onset: start of the smooth switch, Å (default 5.0).
        skin: extra table radius, Å.

    Example:
        >>> from ase.build import bulk
        >>> from jaxinfo.potentials import SuttonChen, energy_and_forces
        >>> e, _ = energy_and_forces(SuttonChen(), bulk("Cu", "fcc", a=3.61, cubic=True))
        >>> round(e / 4, 2)
        -3.39
    """

    epsilon: float = 1.2382e-2
    c: float = 39.432
    a: float = 3.61
    n: float = 9.0
    m: float = 6.0

    def __post_init__(self):
        super().__post_init__()
        for name in ("epsilon", "c", "a", "n", "m"):
            check_positive(name, getattr(self, name))

    def energy(self, positions, cell, table):
        distance, mask = neighbour_distances(positions, cell, table)
        inside = mask & (distance < self.cutoff)
        safe = jnp.where(inside, distance, self.cutoff)
        switch = jnp.where(inside, smooth_switch(safe, self.onset, self.cutoff), 0.0)
        ratio = self.a / safe
        repulsion = 0.5 * jnp.sum(ratio**self.n * switch)
        # The density is switched with S², so that sqrt(ρ) stays C1 even for an atom whose only
        # neighbours sit near the cutoff (with S, sqrt(ρ) ∝ rc − r and the force would jump).
        density = jnp.sum(ratio**self.m * switch * switch, axis=1)
        # sqrt has an infinite slope at 0: isolated atoms (density 0) get zero gradient.
        isolated = density <= 0.0
        embedding = jnp.where(isolated, 0.0, jnp.sqrt(jnp.where(isolated, 1.0, density)))
        return self.epsilon * (repulsion - self.c * jnp.sum(embedding))


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnergyFunction(Potential):
    """Any user JAX energy ``energy_fn(positions, cell) -> scalar`` (eV) as a potential.

    The function must be pure and differentiable with respect to positions ((n_atoms, 3), Å)
    and cell ((3, 3) rows, Å); it handles its own neighbours, so no table is built. A jax-md
    energy fits in a few lines (see the module docstring).

    Attributes:
        energy_fn: the callable. Instances hash by its identity, so reuse one callable to reuse
            compiled code.
    """

    energy_fn: Callable | None = dataclasses.field(default=None, kw_only=False)

    def __post_init__(self):
        super().__post_init__()
        if not callable(self.energy_fn):
            raise ValueError(
                "EnergyFunction needs a callable energy_fn(positions, cell) -> scalar (eV), "
                f"got {self.energy_fn!r}"
            )
        if self.cutoff is not None:
            raise ValueError("EnergyFunction plans no neighbour table: leave cutoff=None")

    def energy(self, positions, cell, table=None):
        return jnp.asarray(self.energy_fn(positions, cell))


def as_potential(potential) -> Potential:
    """A :class:`Potential` as it is, or a callable ``energy_fn(positions, cell) -> scalar``
    (eV) wrapped in an :class:`EnergyFunction`; anything else raises ValueError."""
    if isinstance(potential, Potential):
        return potential
    if callable(potential):
        return EnergyFunction(energy_fn=potential)
    raise ValueError(
        "potential must be a jaxinfo.potentials.Potential or a callable "
        f"energy_fn(positions, cell) -> scalar, got {type(potential).__name__}"
    )


@functools.lru_cache(maxsize=32)  # bounded: potentials are hashable, and may be many
def _compiled_energy_and_forces(potential: Potential):
    def value_and_forces(positions, cell, table):
        energy, grad = jax.value_and_grad(potential.energy)(positions, cell, table)
        return energy, -grad

    return jax.jit(value_and_forces)


def energy_and_forces(potential, atoms, *, dtype=None):
    """Energy and forces of one structure (host convenience; builds the table).

    Args:
        potential: a :class:`Potential` or a callable ``energy_fn(positions, cell)``.
        atoms: an ``ase.Atoms``.
        dtype: floating dtype (default float32, or float64 when JAX x64 is enabled).

    Returns:
        ``(energy, forces)``: a float in eV and an (n_atoms, 3) numpy array in eV/Å.

    Raises:
        ValueError: bad geometry.
    """
    potential = as_potential(potential)
    positions, cell, pbc = check_geometry(atoms.positions, atoms.cell.array, atoms.pbc)
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    fns = potential.neighbour_list()
    table = None if fns is None else fns.allocate(positions, cell, pbc).candidates
    energy, forces = _compiled_energy_and_forces(potential)(
        jnp.asarray(positions, dtype=dtype), jnp.asarray(cell, dtype=dtype), table
    )
    return float(energy), np.asarray(forces)
