"""Energy conservation of NVE with the δH bias on and no new deposits (issue 11).

System: the 32-atom Cu cell ``load_example("bulk_300K")[0]``, Sutton–Chen, NVE velocity
Verlet from Maxwell–Boltzmann velocities at 600 K (the "unbiased hot" arm: 2200 K, whose mean
temperature is near that of the heated 1 eV/nat runs), float64, for ``--time`` fs (default 300 fs,
i.e. 150 steps at 2 fs) at time steps 0.5, 1 and 2 fs. Bias ``kind="delta"``, k = 8,
rc = 4 Å, h = 0.015 1/Å, only the starting frame deposited (``deposit_every`` beyond the run).

Measured: drift = max_t |E_tot(t) − E_tot(0)| / n_atoms in eV/atom, for the unbiased run and
the standard and smooth descriptors at strengths 0.1 and 1 eV/nat, and the fitted exponent p
of drift ∝ dt^p (p ≈ 2: the integrator's error on a smooth Hamiltonian, a stiff bias only
raises its prefactor; p ≈ 1: force discontinuities, one error ∝ dt per crossing; p ≈ 0:
energy jumps). The ratio to the unbiased drift at the same dt is the requirement (≤ 3). Also:
the wall time per step at 2 fs (compilation excluded by a warm-up run), the mean kinetic
temperature (the bias heats the system) and the stiffness: the largest |eigenvalue| of the
Hessian of the potential and of the bias energy at the last frame of the 2 fs run, eV/Å²;
and the cost of one bias energy + forces evaluation (median of 50, compiled) for k = 8,
rc = 4 Å and the default k = 32, rc = 5 Å.

``before``: the same measurement at commit 356029d, whose smooth variant rescaled each atom's
cutoff to its (k+1)-th neighbour distance (continuous, with hard sorts).

Usage:
    python experiments/energy_conservation.py [--out experiments/results] [--overwrite]
        [--time 300]

Writes ``energy_conservation.json`` under ``--out``. About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)  # this script only: drift is measured in float64

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _outputs import experiment_parser, output_paths  # noqa: E402

from jaxinfo.biased_md import (  # noqa: E402
    DeltaEntropyBias,
    bias_descriptors,
    bias_energy,
    descriptor_neighbours,
    run_md,
)
from jaxinfo.datasets import load_example  # noqa: E402
from jaxinfo.objectives import reference_init  # noqa: E402
from jaxinfo.potentials import SuttonChen  # noqa: E402

TIMESTEPS = (0.5, 1.0, 2.0)  # fs
STRENGTHS = (0.1, 1.0)  # eV/nat
TEMPERATURE = 600.0  # K
#: Initial temperature of the "unbiased hot" arm: its mean kinetic temperature (~1100 K) is
#: close to that of the 1 eV/nat runs, which the bias heats.
HOT_TEMPERATURE = 2200.0  # K
DESCRIPTORS = ("standard", "smooth")
#: This script at commit 356029d (old smooth variant), eV/atom at dt = 0.5, 1, 2 fs.
BEFORE = {
    "unbiased": [1.54e-06, 6.13e-06, 2.46e-05],
    "standard 0.1": [2.19e-04, 2.42e-04, 3.16e-04],
    "smooth 0.1": [2.82e-05, 7.43e-05, 1.05e-04],
    "standard 1": [2.77e-03, 2.17e-03, 1.92e-03],
    "smooth 1": [1.37e-03, 2.22e-03, 4.14e-03],
}


def parse_args(argv=None):
    parser = experiment_parser(__doc__)
    parser.add_argument("--time", type=float, default=300.0, help="simulated time, fs (300)")
    return parser.parse_args(argv)


def make_bias(descriptor, strength):
    if descriptor is None:
        return None
    return DeltaEntropyBias(
        strength=strength, deposit_every=100000, k=8, cutoff=4.0, smooth=descriptor == "smooth"
    )


def drift(atoms, bias, timestep, total_time, timed=False, temperature=TEMPERATURE):
    """(max |E_tot − E_tot(0)| per atom in eV, ms per step or None, mean temperature in K)."""
    n_steps = round(total_time / timestep)
    run = dict(n_steps=n_steps, timestep=timestep, temperature=temperature, bias=bias)
    if timed:
        run_md(atoms, SuttonChen(), **(run | dict(n_steps=10)))  # compiles the chunk
    result = run_md(atoms, SuttonChen(), **run)
    total = result.total_energy
    ms_per_step = 1e3 * result.wall_time / n_steps if timed else None
    value = float(np.max(np.abs(total - total[0])) / len(atoms))
    return value, ms_per_step, float(np.mean(result.temperature)), result.frames


def largest_curvature(energy, positions, iterations=40):
    """Largest |eigenvalue| of the Hessian of ``energy`` at ``positions`` (power iteration).

    Hessian-vector products by central differences of the gradient (step 1e-4 Å), which also
    work through the standard descriptor's custom VJP (no forward mode).
    """
    gradient = jax.jit(jax.grad(energy))

    def product(v):
        return (gradient(positions + 1e-4 * v) - gradient(positions - 1e-4 * v)) / 2e-4

    vector = jnp.asarray(np.random.default_rng(0).normal(size=positions.shape))
    value = 0.0
    for _ in range(iterations):
        vector = vector / jnp.linalg.norm(vector)
        image = product(vector)
        value = float(jnp.vdot(vector, image))
        vector = image
    return abs(value)


def bias_energy_fn(atoms, bias, positions):
    """``positions -> U`` (eV) against the starting frame, neighbour list built at positions."""
    cell, pbc = jnp.asarray(atoms.cell.array), atoms.pbc
    fns = descriptor_neighbours(bias)
    start = jnp.asarray(atoms.positions)
    start_table = fns.update(start, cell, fns.allocate(atoms.positions, atoms.cell.array, pbc))
    x0 = bias_descriptors(start, cell, start_table.table, bias)
    reference = reference_init(x0, x0.shape[0], bias.h)
    desc_list = fns.allocate(positions, atoms.cell.array, pbc)

    def energy(p):
        return bias_energy(p, cell, fns.update(p, cell, desc_list).table, reference, bias)

    return energy


def curvatures(atoms, bias, frame):
    """Largest Hessian eigenvalue (eV/Å²) of the potential and of the bias at ``frame``."""
    potential = SuttonChen()
    cell = jnp.asarray(atoms.cell.array)
    pot_list = potential.neighbour_list().allocate(frame.positions, atoms.cell.array, atoms.pbc)

    def e_pot(p):
        return potential.energy(p, cell, pot_list.candidates)

    positions = jnp.asarray(frame.positions)
    e_bias = bias_energy_fn(atoms, bias, frame.positions)
    return largest_curvature(e_pot, positions), largest_curvature(e_bias, positions)


def force_cost(atoms, bias, repeats=50):
    """Median ms of one compiled bias energy + forces evaluation (table update included)."""
    energy = jax.jit(jax.value_and_grad(bias_energy_fn(atoms, bias, atoms.positions)))
    positions = jnp.asarray(atoms.positions)
    jax.block_until_ready(energy(positions))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(energy(positions))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def slope(timesteps, drifts):
    """Least-squares p of drift ∝ dt^p."""
    return float(np.polyfit(np.log(timesteps), np.log(drifts), 1)[0])


def main(argv=None):
    args = parse_args(argv)
    json_path, _ = output_paths(args.out, "energy_conservation", args.overwrite)
    atoms = load_example("bulk_300K")[0]
    arms = [("unbiased", None, 0.0), ("unbiased hot", None, 0.0)] + [
        (f"{d} {s:g}", d, s) for s in STRENGTHS for d in DESCRIPTORS
    ]
    rows = {}
    for name, descriptor, strength in arms:
        bias = make_bias(descriptor, strength)
        drifts = []
        for dt in TIMESTEPS:
            timed = dt == TIMESTEPS[-1]
            start = HOT_TEMPERATURE if name == "unbiased hot" else TEMPERATURE
            value, ms, temperature, frames = drift(atoms, bias, dt, args.time, timed, start)
            drifts.append(value)
            print(f"{name:>14} dt={dt:g} fs: {value:.3g} eV/atom", file=sys.stderr, flush=True)
        row = dict(
            descriptor=descriptor, strength=strength, drift=drifts,
            exponent=slope(TIMESTEPS, drifts), ms_per_step=ms, mean_temperature_K=temperature,
        )  # fmt: skip
        if bias is not None:  # curvatures at the last frame of the largest-dt run
            row["curvature_potential"], row["curvature_bias"] = curvatures(atoms, bias, frames[-1])
        rows[name] = row
    unbiased = rows["unbiased"]["drift"]
    header = "arm".rjust(14) + "".join(f"dt={dt:g} fs (×unb.)".rjust(22) for dt in TIMESTEPS)
    print(header + "      p  ms/step  <T>/K  λ_pot  λ_bias (eV/Å²)")
    for name, row in rows.items():
        row["ratio_to_unbiased"] = [d / u for d, u in zip(row["drift"], unbiased, strict=True)]
        cells = "".join(
            f"{d:10.2e} ({r:6.1f})".rjust(22)
            for d, r in zip(row["drift"], row["ratio_to_unbiased"], strict=True)
        )
        lambdas = ""
        if "curvature_bias" in row:
            lambdas = f"  {row['curvature_potential']:5.1f}  {row['curvature_bias']:6.1f}"
        print(
            f"{name:>14}{cells}  {row['exponent']:5.2f}  {row['ms_per_step']:7.2f}"
            f"  {row['mean_temperature_K']:5.0f}{lambdas}"
        )
    costs = {}
    for k, cutoff in ((8, 4.0), (32, 5.0)):
        for descriptor in DESCRIPTORS:
            bias = DeltaEntropyBias(0.1, k=k, cutoff=cutoff, smooth=descriptor == "smooth")
            costs[f"{descriptor} k={k}"] = force_cost(atoms, bias)
    print("bias energy + forces, ms per evaluation (32 atoms):", end="")
    print("".join(f"  {name}: {ms:.2f}" for name, ms in costs.items()))
    output = dict(
        system="bulk_300K[0], 32 Cu, SuttonChen, NVE, float64",
        temperature_K=TEMPERATURE, simulated_time_fs=args.time, timesteps_fs=list(TIMESTEPS),
        bias=dict(kind="delta", k=8, cutoff=4.0, h=0.015, deposits="step 0 only"),
        drift_unit="max |E_tot - E_tot(0)| per atom, eV", curvature_unit="eV/Å²", arms=rows,
        before_356029d=BEFORE, bias_force_ms_per_evaluation=costs,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )  # fmt: skip
    json_path.write_text(json.dumps(output, indent=2))
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
