"""The bundled example dataset: small Cu structures for examples, tests and tutorials.

``cu_example.xyz`` (extxyz, 84 frames, 4368 atomic environments, about 250 KiB) holds fcc Cu
snapshots from Langevin molecular dynamics with ase's EMT potential, 12 frames per condition:

============== ======= ======================================================
label          atoms   structure
============== ======= ======================================================
bulk_300K      32      fcc bulk (2x2x2 cubic cells, a = 3.61 Å), NVT 300 K
bulk_600K      32      same, 600 K
bulk_900K      32      same, 900 K
bulk_1200K     32      same, 1200 K
liquid         108     melted at 3000 K, sampled at 1800 K, volume +12.5 %
surface_300K   64      fcc(111) slab, 4 layers, 10 Å vacuum, pbc = (T, T, F)
surface_600K   64      same, 600 K
============== ======= ======================================================

Positions are in Å (rounded to 1e-6 Å), energies in eV, forces in eV/Å (rounded to 1e-5 eV/Å).
The file is produced by ``scripts/make_example_data.py``; see ``jaxinfo/data/README.md``.

Example:
    >>> from jaxinfo.datasets import load_example
    >>> frames = load_example("bulk_300K")
    >>> len(frames), len(frames[0])
    (12, 32)
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
from collections.abc import Iterable
from pathlib import Path

import ase.io
from ase import Atoms

__all__ = ["example_labels", "example_path", "load_example"]

_EXAMPLE_FILE = "cu_example.xyz"
_EXTRACTED = contextlib.ExitStack()  # keeps a file extracted from a zipped install alive
atexit.register(_EXTRACTED.close)


def example_path() -> Path:
    """Returns the path of the bundled example file ``cu_example.xyz``.

    Returns:
        A :class:`pathlib.Path` to an extxyz file readable by :func:`ase.io.read`. For a package
        installed from a zip archive the file is extracted to a temporary location that lives
        until the interpreter exits.

    Raises:
        FileNotFoundError: if the package was installed without its data files.
    """
    resource = importlib.resources.files("jaxinfo").joinpath("data", _EXAMPLE_FILE)
    if isinstance(resource, Path):
        path = resource
    else:  # zipped or otherwise virtual install: materialise a real file once
        path = Path(_EXTRACTED.enter_context(importlib.resources.as_file(resource)))
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled example file {path} is missing; reinstall jaxinfo with its package data"
        )
    return path


def _read_all() -> list[Atoms]:
    # extxyz moves the 'energy' key of the comment line into a SinglePointCalculator. The energy
    # is not copied to atoms.info: ase.io.write refuses a key that is both in atoms.info and in
    # the calculator's results, and the frames must be writable as read.
    return ase.io.read(example_path(), index=":", format="extxyz")


def example_labels() -> list[str]:
    """Returns the distinct ``atoms.info['label']`` values of the example file, in file order."""
    return list(dict.fromkeys(atoms.info["label"] for atoms in _read_all()))


def load_example(label: str | Iterable[str] | None = None) -> list[Atoms]:
    """Loads the bundled Cu example structures.

    Args:
        label: ``None`` for all 84 frames, or one label (e.g. ``"bulk_300K"``, ``"liquid"``,
            ``"surface_300K"``) or several labels, to keep only the frames whose
            ``atoms.info['label']`` matches. Frames keep their order in the file.

    Returns:
        A list of fresh :class:`ase.Atoms` (callers may modify them). Each carries
        ``info['label']`` (str) and ``info['temperature_K']`` (float, K), positions of shape
        (n_atoms, 3) in Å, and a single-point calculator with the EMT potential energy
        (``atoms.get_potential_energy()``, eV) and forces (``atoms.get_forces()``, (n_atoms, 3),
        eV/Å). The frames can be written back with :func:`ase.io.write` as they are.

    Raises:
        ValueError: if a requested label is not in the file; the message lists the available ones.
    """
    frames = _read_all()
    if label is None:
        return frames
    wanted = [label] if isinstance(label, str) else list(label)
    available = list(dict.fromkeys(atoms.info["label"] for atoms in frames))
    unknown = [name for name in wanted if name not in available]
    if unknown or not wanted:
        raise ValueError(
            f"unknown example label(s) {unknown or wanted!r}; available: {', '.join(available)}"
        )
    return [atoms for atoms in frames if atoms.info["label"] in wanted]
