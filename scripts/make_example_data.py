"""Generate the bundled Cu example dataset ``jaxinfo/data/cu_example.xyz``.

Deterministic (fixed seeds) Langevin molecular dynamics with ase's EMT potential for copper:

* ``bulk_300K`` .. ``bulk_1200K``: fcc bulk, 32 atoms (2x2x2 conventional cells, a = 3.61 Å),
  fully periodic, NVT at 300, 600, 900 and 1200 K.
* ``liquid``: 108 atoms (3x3x3 conventional cells) at liquid density (lattice expanded by 4 %,
  volume +12.5 %), melted at 3000 K and sampled at 1800 K.
* ``surface_300K``, ``surface_600K``: fcc(111) slab, 4x4 in-plane, 4 layers (64 atoms), 10 Å of
  vacuum on each side, pbc = [True, True, False].

Every condition contributes ``--frames`` snapshots (default 12), taken every ``SAMPLE_EVERY`` steps
after an equilibration run. Each frame stores positions (Å, 6 decimals), cell, pbc, the EMT energy
(eV, in the extxyz comment line) and forces (eV/Å, 5 decimals); ``atoms.info`` carries ``label``
and ``temperature_K``.

Usage::

    python scripts/make_example_data.py             # refuses to replace an existing file
    python scripts/make_example_data.py --overwrite

Runs in about a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary

try:  # ase >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # older ase
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "jaxinfo" / "data" / "cu_example.xyz"

LATTICE = 3.61  # Å, fcc Cu (ase.build default)
FRICTION = 0.01 / units.fs  # Langevin friction, 1/(ase time unit)
SAMPLE_EVERY = 20  # MD steps between stored frames
POS_DECIMALS = 6
FORCE_DECIMALS = 5


def _bulk(repeat: int, scale: float = 1.0) -> Atoms:
    return bulk("Cu", "fcc", a=LATTICE * scale, cubic=True) * (repeat, repeat, repeat)


def _slab() -> Atoms:
    atoms = fcc111("Cu", size=(4, 4, 4), a=LATTICE, vacuum=10.0)
    atoms.pbc = (True, True, False)
    return atoms


def _langevin(atoms: Atoms, temperature_k: float, timestep_fs: float, seed: int) -> Langevin:
    return Langevin(
        atoms,
        timestep_fs * units.fs,
        temperature_K=temperature_k,
        friction=FRICTION,
        fixcm=False,
        rng=np.random.default_rng(seed),
    )


def _snapshot(atoms: Atoms, label: str, temperature_k: float) -> Atoms:
    """A clean copy (no constraints, momenta or tags) with rounded positions, energy and forces."""
    energy = float(atoms.get_potential_energy())
    forces = np.round(atoms.get_forces(), FORCE_DECIMALS)
    # Wrap along periodic axes so that every stored position lies inside the cell.
    frame = Atoms(
        numbers=atoms.numbers,
        positions=atoms.get_positions(wrap=True),
        cell=atoms.cell,
        pbc=atoms.pbc,
    )
    frame.positions = np.round(frame.positions, POS_DECIMALS)
    frame.info["label"] = label
    frame.info["temperature_K"] = float(temperature_k)
    frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces)
    return frame


def run_condition(
    atoms: Atoms,
    label: str,
    *,
    temperature_k: float,
    seed: int,
    n_frames: int,
    equilibrate: int,
    timestep_fs: float,
    melt_k: float | None = None,
    melt_steps: int = 0,
) -> tuple[list[Atoms], float]:
    """Run NVT Langevin MD and return ``n_frames`` snapshots and the sampling-window MSD (Å²)."""
    atoms = atoms.copy()
    rng = np.random.default_rng(seed)
    atoms.rattle(stdev=0.02, rng=rng)
    atoms.calc = EMT()
    atoms.set_constraint(FixCom())
    thermalize_momenta(atoms, temperature_K=melt_k or temperature_k, rng=rng)
    Stationary(atoms)
    if melt_k is not None and melt_steps:
        _langevin(atoms, melt_k, timestep_fs, seed + 1).run(melt_steps)
    dyn = _langevin(atoms, temperature_k, timestep_fs, seed + 2)
    dyn.run(equilibrate)
    start = atoms.get_positions()  # unwrapped: ase MD does not wrap positions
    frames = []
    for _ in range(n_frames):
        dyn.run(SAMPLE_EVERY)
        frames.append(_snapshot(atoms, label, temperature_k))
    msd = float(np.mean(np.sum((atoms.get_positions() - start) ** 2, axis=1)))
    return frames, msd


def _format_float(token: str, decimals: int) -> str:
    text = f"{float(token):.{decimals}f}"
    return "0." + "0" * decimals if text == "-0." + "0" * decimals else text


def to_compact_extxyz(frames: list[Atoms]) -> str:
    """extxyz text as written by ase, with the per-atom columns printed at reduced precision."""
    buffer = io.StringIO()
    ase.io.write(buffer, frames, format="extxyz")
    lines = buffer.getvalue().splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        natoms = int(lines[i])
        out.extend(lines[i : i + 2])
        for line in lines[i + 2 : i + 2 + natoms]:
            symbol, *numbers = line.split()
            assert len(numbers) == 6, "expected columns: species, pos (3), forces (3)"
            pos = [_format_float(v, POS_DECIMALS) for v in numbers[:3]]
            frc = [_format_float(v, FORCE_DECIMALS) for v in numbers[3:]]
            out.append(" ".join([symbol, *pos, *frc]))
        i += 2 + natoms
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="extxyz file to write")
    parser.add_argument("--frames", type=int, default=12, help="frames per condition")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output file if it exists"
    )
    args = parser.parse_args(argv)

    output: Path = args.output
    if output.exists() and not args.overwrite:
        print(f"error: {output} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1

    n = args.frames
    conditions = [
        dict(atoms=_bulk(2), label=f"bulk_{t}K", temperature_k=t, seed=100 + i,
             equilibrate=300, timestep_fs=5.0)
        for i, t in enumerate((300, 600, 900, 1200))
    ]  # fmt: skip
    conditions.append(
        dict(atoms=_bulk(3, scale=1.04), label="liquid", temperature_k=1800, seed=200,
             equilibrate=300, timestep_fs=4.0, melt_k=3000, melt_steps=500)
    )  # fmt: skip
    conditions += [
        dict(atoms=_slab(), label=f"surface_{t}K", temperature_k=t, seed=300 + i,
             equilibrate=300, timestep_fs=5.0)
        for i, t in enumerate((300, 600))
    ]  # fmt: skip

    frames: list[Atoms] = []
    t0 = time.perf_counter()
    for cond in conditions:
        t1 = time.perf_counter()
        new, msd = run_condition(n_frames=n, **cond)
        frames += new
        energies = [f.get_potential_energy() / len(f) for f in new]
        print(
            f"{cond['label']:>14}: {n} frames x {len(new[0])} atoms, "
            f"E = {np.mean(energies):.4f} eV/atom, MSD over sampling = {msd:.3f} Å², "
            f"{time.perf_counter() - t1:.1f} s"
        )

    text = to_compact_extxyz(frames)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)
    n_env = sum(len(f) for f in frames)
    print(
        f"wrote {output} ({len(frames)} frames, {n_env} environments, "
        f"{output.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
