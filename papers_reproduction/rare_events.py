"""Entropy through a crystallisation event (paper Fig. 6), surrogate with a Lennard-Jones liquid.

SURROGATE (the paper analyses its own nucleation trajectory). 256 atoms interacting with the
Cu parameters of ``jaxinfo.potentials.LennardJones`` (ε = 0.4093 eV, σ = 2.338 Å, cutoff 6 Å)
at the density ρ = 0.95 σ⁻³ (13.5 Å³/atom) in a fixed periodic cell, Langevin MD
(``jaxinfo.biased_md.run_md``, 4 fs, friction 0.002 1/fs) at T* = kT/ε = 0.25 (1190 K), far
below freezing. Seeds are fixed: the run is deterministic for a given precision and machine.

* Full run: homogeneous nucleation, no seed crystal. fcc is melted at T* = 1.5 (4 ps), then
  quenched at once (the thermostat cools it within ~2 ps); after several ps as a supercooled
  liquid the system crystallises spontaneously.
* ``--quick`` (CI, < 1 min): growth from a crystal slab. A layer of the fcc crystal (z < L/4)
  is pinned to its sites by springs while the rest melts at T* = 2.5 and is cooled (0.2 ps,
  friction 0.05 1/fs); released at t = 0, the slab grows through the liquid in < 1 ps. The
  frames are 40 fs apart instead of 200 fs.

The event is detected from the information signal alone, per recorded frame:

* H: the entropy of the frame's environments (``jaxinfo.entropy``, h = 0.015 1/Å);
* mean δH: ``jaxinfo.delta_entropy`` of the frame's environments against those of the
  5 preceding frames, averaged over atoms (how novel the new frame is given the recent past:
  a liquid keeps producing new environments, a crystal repeats its own).

The order parameter plotted beside them (never used by the detection) is the fraction of
solid-like atoms of ten Wolde, Ruiz-Montero and Frenkel (1996): Steinhardt q6 vectors over
neighbours within 1.5 σ; a bond is crystal-like when the normalised q6·q6* > 0.7, an atom is
solid-like with at least 7 such bonds. Each signal's event time is the least-squares single
change point (best two-level step fit), after the cooling transient of the full run.

Usage: python papers_reproduction/rare_events.py --out DIR [--quick]
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from _common import Figure, parse_args, pyplot
from ase import units
from ase.build import bulk
from ase.neighborlist import neighbor_list
from scipy.special import sph_harm_y

import jaxinfo
from jaxinfo.biased_md import run_md
from jaxinfo.potentials import LennardJones

POTENTIAL = LennardJones()
SIGMA, EPSILON = POTENTIAL.sigma, POTENTIAL.epsilon  # Å, eV
DENSITY = 0.95  # atoms per σ³
T_QUENCH = 0.25  # reduced temperature kT/ε of the recorded run
TIMESTEP = 4.0  # fs
FRICTION_MELT, FRICTION_COOL, FRICTION = 0.005, 0.05, 0.002  # Langevin friction, 1/fs
COOL_STEPS = 50  # 0.2 ps of strong friction at T_QUENCH (slab protocol only)
H_BANDWIDTH = 0.015  # 1/Å
WINDOW_FRAMES = 5  # δH reference: the 5 preceding frames
Q6_CUTOFF = 1.5 * SIGMA  # Å, first minimum of g(r)
Q6_BOND, Q6_MIN_BONDS = 0.7, 7
SIGNAL_NAMES = {"solid_fraction": "order parameter", "H": "H", "mean_dH_window": "mean δH"}


def kelvin(reduced_temperature: float) -> float:
    """T in K from T* = kT/ε."""
    return reduced_temperature * EPSILON / units.kB


def solid_like_fraction(atoms) -> float:
    """Fraction of solid-like atoms (ten Wolde q6 bond criterion, see the module docstring)."""
    i, j, vectors = neighbor_list("ijD", atoms, Q6_CUTOFF)
    r = np.linalg.norm(vectors, axis=1)
    theta = np.arccos(np.clip(vectors[:, 2] / r, -1.0, 1.0))
    phi = np.arctan2(vectors[:, 1], vectors[:, 0])
    m = np.arange(-6, 7)
    harmonics = sph_harm_y(6, m[None, :], theta[:, None], phi[:, None])  # (bonds, 13)
    n_atoms = len(atoms)
    q6 = np.zeros((n_atoms, m.size), dtype=complex)
    np.add.at(q6, i, harmonics)
    q6 /= np.maximum(np.linalg.norm(q6, axis=1, keepdims=True), 1e-12)
    bond_order = np.real(np.sum(q6[i] * np.conj(q6[j]), axis=1))
    crystal_bonds = np.bincount(i, weights=bond_order > Q6_BOND, minlength=n_atoms)
    return float(np.mean(crystal_bonds >= Q6_MIN_BONDS))


def change_point(values) -> int:
    """Index k minimising the squared error of a two-level step (values[:k], values[k:])."""
    v = np.asarray(values, dtype=np.float64)
    costs = [np.var(v[:k]) * k + np.var(v[k:]) * (v.size - k) for k in range(2, v.size - 1)]
    return 2 + int(np.argmin(costs))


def step_fit(times, values, start: int) -> dict:
    """Change point of values[start:]: event time (ps) and the levels before/after (± std)."""
    v = np.asarray(values[start:], dtype=np.float64)
    k = change_point(v)
    before, after = v[:k], v[k:]
    noise = max(before.std(), after.std(), 1e-12)
    return {
        "event_time_ps": float(times[start + k]),
        "before_mean": float(before.mean()),
        "before_std": float(before.std()),
        "after_mean": float(after.mean()),
        "after_std": float(after.std()),
        "step_over_noise": float(abs(after.mean() - before.mean()) / noise),
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class PinnedLennardJones(LennardJones):
    """LennardJones plus harmonic springs tying some atoms to fixed sites (keeps a slab solid).

    Attributes:
        pins: ((atom index, x, y, z), ...): the pinned atoms and their sites in Å.
        spring: spring constant, eV/Å².
    """

    pins: tuple = ()
    spring: float = 5.0

    def energy(self, positions, cell, table):
        energy = super().energy(positions, cell, table)
        if not self.pins:
            return energy
        index = np.array([int(p[0]) for p in self.pins])
        sites = jnp.asarray(np.array([p[1:] for p in self.pins]), positions.dtype)
        fractional = (positions[index] - sites) @ jnp.linalg.inv(cell)
        offsets = (fractional - jnp.round(fractional)) @ cell  # minimum image, Å
        return energy + 0.5 * self.spring * jnp.sum(offsets**2)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How the trajectory is made (steps of TIMESTEP unless stated, temperatures T* = kT/ε)."""

    repeats: int  # fcc cubic cells per edge (4 n³ atoms)
    t_melt: float  # T* of the melting stage
    melt_steps: int
    melt_timestep: float  # fs
    steps: int  # recorded run at T_QUENCH
    record_every: int  # steps between recorded frames
    seed: int  # random seed (velocities, Langevin noise): stage i uses seed + i
    slab_fraction: float  # pinned crystal layer 0 <= z < slab_fraction during preparation
    transient_ps: float  # start of the recorded run left out of the change-point fits


# Full: homogeneous nucleation (no seed crystal); quick: growth from a crystal slab (CI, < 1 min).
FULL = Protocol(
    repeats=4, t_melt=1.5, melt_steps=1000, melt_timestep=4.0, steps=4000, record_every=50,
    seed=0, slab_fraction=0.0, transient_ps=2.0,
)  # fmt: skip
QUICK = Protocol(
    repeats=4, t_melt=2.5, melt_steps=500, melt_timestep=2.0, steps=500, record_every=10,
    seed=0, slab_fraction=0.25, transient_ps=0.0,
)  # fmt: skip


def trajectory(protocol: Protocol):
    """The recorded MD at T_QUENCH (a ``run_md`` result), after the preparation.

    fcc at DENSITY is melted at ``t_melt``. Without a slab the liquid is then quenched at once:
    the recorded Langevin run at T_QUENCH starts from it (its first ps is the cooling). With a
    slab (``slab_fraction`` > 0), the atoms of that layer stay pinned to their lattice sites
    while the rest melts and during COOL_STEPS of strong friction at T_QUENCH, so a crystal
    slab meets the supercooled liquid at two flat interfaces when the recorded run (no pins)
    starts.
    """
    p = protocol
    lattice = (4.0 / DENSITY) ** (1.0 / 3.0) * SIGMA
    atoms = bulk("Cu", "fcc", a=lattice, cubic=True).repeat(p.repeats)
    slab = np.nonzero(atoms.get_scaled_positions()[:, 2] < p.slab_fraction)[0]
    pins = tuple((int(i), *map(float, atoms.positions[i])) for i in slab)
    pinned = PinnedLennardJones(pins=pins) if pins else POTENTIAL
    stages = [(pinned, p.melt_steps, p.melt_timestep, p.t_melt, FRICTION_MELT, p.melt_steps)]
    if slab.size:
        stages.append((pinned, COOL_STEPS, TIMESTEP, T_QUENCH, FRICTION_COOL, COOL_STEPS))
    stages.append((POTENTIAL, p.steps, TIMESTEP, T_QUENCH, FRICTION, p.record_every))
    for offset, (potential, n_steps, timestep, reduced_t, friction, every) in enumerate(stages):
        md = run_md(
            atoms,
            potential,
            n_steps=n_steps,
            timestep=timestep,
            temperature=kelvin(reduced_t),
            friction=friction,
            record_every=every,
            seed=p.seed + offset,
        )
        atoms = md.frames[-1]
    return md


def main(argv=None):
    args = parse_args(__doc__, argv)
    out = Figure("rare_events", args, kind="surrogate", panel="Fig. 6, rare event (nucleation)")
    protocol = QUICK if args.quick else FULL
    md = trajectory(protocol)
    frames = md.frames
    n_atoms = len(frames[0])
    times = np.array([f.info["time_fs"] for f in frames]) / 1000.0  # ps
    temperature = md.temperature[:: protocol.record_every]
    energy = np.array([f.info["energy"] for f in frames]) / n_atoms  # eV/atom
    print(f"MD: {n_atoms} atoms, {len(frames)} frames, {md.wall_time:.1f} s", flush=True)

    order = np.array([solid_like_fraction(f) for f in frames])
    x = np.asarray(jaxinfo.descriptors(frames)).reshape(len(frames), n_atoms, -1)
    entropy = np.array([float(jaxinfo.entropy(xf, h=H_BANDWIDTH)) for xf in x])
    novelty = np.full(len(frames), np.nan)  # mean δH against the preceding window
    for t in range(WINDOW_FRAMES, len(frames)):
        reference = x[t - WINDOW_FRAMES : t].reshape(-1, x.shape[2])
        novelty[t] = float(np.mean(jaxinfo.delta_entropy(x[t], reference, h=H_BANDWIDTH)))

    window_ps = WINDOW_FRAMES * protocol.record_every * TIMESTEP / 1000.0
    start = max(int(np.searchsorted(times, protocol.transient_ps)), WINDOW_FRAMES)
    fits = {
        "solid_fraction": step_fit(times, order, start),
        "H": step_fit(times, entropy, start),
        "mean_dH_window": step_fit(times, novelty, start),
    }
    t_order = fits["solid_fraction"]["event_time_ps"]
    crossing = np.nonzero(order >= 0.5)[0]
    for name, fit in fits.items():
        print(f"{name}: event at {fit['event_time_ps']:.2f} ps, {fit['before_mean']:.3f} -> "
              f"{fit['after_mean']:.3f} ({fit['step_over_noise']:.1f} x noise)")  # fmt: skip

    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(6.5, 7.5), sharex=True)
    axes[0].plot(times, order, "k.-", ms=3)
    axes[0].set_ylabel("solid-like fraction\n(q6 bonds, order parameter)")
    axes[1].plot(times, entropy, "C0.-", ms=3)
    axes[1].set_ylabel(f"H of the frame (nats)\nh = {H_BANDWIDTH} 1/Å, N = {n_atoms}")
    axes[2].plot(times, novelty, "C3.-", ms=3)
    axes[2].set_ylabel(f"mean δH of the frame vs the\npreceding {window_ps:g} ps (nats)")
    axes[2].set_xlabel(f"time after the quench to T* = {T_QUENCH} (ps)")
    for ax, (name, fit) in zip(axes, fits.items(), strict=True):
        ax.axvline(t_order, color="k", lw=0.8, label=f"order parameter: {t_order:.1f} ps")
        if name != "solid_fraction":
            label = f"from {SIGNAL_NAMES[name]} alone: {fit['event_time_ps']:.1f} ps"
            ax.axvline(fit["event_time_ps"], color="C1", ls="--", lw=1.2, label=label)
        ax.axvspan(0, protocol.transient_ps, color="0.9", lw=0)
        ax.legend(loc="best")
    axes[0].set_title(f"Lennard-Jones (Cu parameters), ρ = {DENSITY} σ⁻³: crystallisation")
    fig.tight_layout()
    out.save(
        fig,
        parameters={
            "potential": "jaxinfo.potentials.LennardJones defaults (Halicioglu-Pound Cu)",
            "epsilon_eV": EPSILON,
            "sigma_A": SIGMA,
            "density_per_sigma3": DENSITY,
            "atomic_volume_A3": frames[0].get_volume() / n_atoms,
            "n_atoms": n_atoms,
            "protocol": dataclasses.asdict(protocol),
            "T_melt_K": kelvin(protocol.t_melt),
            "T_quench_reduced": T_QUENCH,
            "T_quench_K": kelvin(T_QUENCH),
            "timestep_fs": TIMESTEP,
            "friction_melt_per_fs": FRICTION_MELT,
            "friction_cool_per_fs": FRICTION_COOL,
            "friction_per_fs": FRICTION,
            "cool_steps_slab_only": COOL_STEPS,
            "h": H_BANDWIDTH,
            "descriptor": "jaxinfo.descriptors defaults (k = 32, cutoff 5 Å)",
            "window_frames": WINDOW_FRAMES,
            "window_ps": window_ps,
            "q6_cutoff_A": Q6_CUTOFF,
            "q6_bond_threshold": Q6_BOND,
            "q6_min_bonds": Q6_MIN_BONDS,
            "event_time": "least-squares single change point of each series after the transient",
        },
        time_ps=times,
        solid_fraction=order,
        H=entropy,
        mean_dH_window=novelty,
        potential_energy_eV_per_atom=energy,
        temperature_K=temperature,
        log_n_atoms=float(np.log(n_atoms)),
        fits=fits,
        event_time_order_parameter_ps=t_order,
        event_time_order_parameter_half_ps=float(times[crossing[0]]) if crossing.size else None,
        event_time_H_ps=fits["H"]["event_time_ps"],
        event_time_dH_ps=fits["mean_dH_window"]["event_time_ps"],
        md_wall_s=md.wall_time,
        paper_claim="H and δH of each frame change at the nucleation event without any order "
        "parameter; an order parameter shows the event at the same time",
        verdict="QUALITATIVE",
    )


if __name__ == "__main__":
    main()
