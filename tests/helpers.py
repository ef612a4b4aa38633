"""Shared test helpers: structure builders, brute-force references and hypothesis strategies.

Everything here is independent of :mod:`jaxinfo` on purpose: the brute-force neighbour search
loops over explicit periodic images, and :func:`reference_descriptor` is a plain numpy transcription
of the QUESTS descriptor (DESIGN.md section 1.1), so the tests compare the library against code
that shares none of its implementation.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from hypothesis import note
from hypothesis import strategies as st

# --------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------

_ROOT = Path(__file__).resolve().parents[1]
# A copy of the peer's reference values (quests 2026.2.22) lives with the tests, so a fresh
# clone runs every parity test.
_REFERENCE_CANDIDATES = [_ROOT / "tests" / "data" / "quests_reference.json"]


def reference_path() -> Path | None:
    """Location of the peer's reference JSON (tests/data), or None when it is missing."""
    for path in _REFERENCE_CANDIDATES:
        if path.is_file():
            return path
    return None


def load_reference() -> dict | None:
    path = reference_path()
    if path is None:
        return None
    with open(path) as handle:
        return json.load(handle)


def atoms_from_reference(entry: dict) -> Atoms:
    """Rebuilds a structure stored in the reference JSON (exact positions, cell, pbc)."""
    return Atoms(
        symbols=entry["symbols"],
        positions=np.asarray(entry["positions"], dtype=float),
        cell=np.asarray(entry["cell"], dtype=float),
        pbc=entry["pbc"],
    )


# --------------------------------------------------------------------------------------------
# Brute-force neighbours and a numpy reference descriptor
# --------------------------------------------------------------------------------------------


def image_shifts(positions, cell, pbc, cutoff) -> np.ndarray:
    """Every integer lattice shift that can bring some image within ``cutoff`` of some atom.

    Along periodic axis a, |n_a| is bounded by (cutoff + largest interatomic separation) / h_a,
    where h_a is the height of lattice vector a over the span of the other *periodic* vectors,
    so the range is exact for slabs and wires too. Non-periodic axes get the single shift 0.
    """
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    periodic = np.flatnonzero(pbc)
    span = float(np.linalg.norm(np.ptp(positions, axis=0)))
    ranges = []
    for axis in range(3):
        if not pbc[axis]:
            ranges.append([0])
            continue
        vector = cell[axis]
        others = cell[[a for a in periodic if a != axis]]
        if len(others):
            basis, _ = np.linalg.qr(others.T)
            vector = vector - basis @ (basis.T @ vector)
        height = float(np.linalg.norm(vector))
        n = int(np.ceil((cutoff + span) / height)) + 1
        ranges.append(range(-n, n + 1))
    return np.array(list(itertools.product(*ranges)), dtype=int)


def brute_force_neighbours(positions, cell, pbc, cutoff):
    """All neighbours within ``cutoff`` of every atom, by looping over explicit images.

    Returns:
        A list (one entry per atom) of ``(distances, vectors)`` sorted by ascending distance;
        the atom itself at zero shift is excluded, its periodic images are included.
    """
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    shifts = image_shifts(positions, cell, pbc, cutoff)
    translations = shifts @ cell
    is_image = np.any(shifts != 0, axis=1)
    out = []
    for i in range(len(positions)):
        vectors = positions[None, :, :] + translations[:, None, :] - positions[i]
        distances = np.linalg.norm(vectors, axis=-1)
        keep = distances < cutoff
        keep[~is_image, i] = False
        d, v = distances[keep], vectors[keep]
        order = np.argsort(d, kind="stable")
        out.append((d[order], v[order]))
    return out


def brute_force_distances(positions, cell, pbc, cutoff):
    """Sorted neighbour distances (< cutoff) of every atom; see :func:`brute_force_neighbours`."""
    return [d for d, _ in brute_force_neighbours(positions, cell, pbc, cutoff)]


def min_distance(atoms: Atoms, probe: float = 3.0) -> float:
    """Shortest distance between two atoms or an atom and an image (inf if none below probe)."""
    distances = brute_force_distances(atoms.positions, atoms.cell.array, atoms.pbc, probe)
    shortest = [d[0] for d in distances if len(d)]
    return min(shortest, default=np.inf)


def reference_descriptor(distances, vectors, k, cutoff) -> np.ndarray:
    """QUESTS descriptor of one environment from its neighbour list, in plain numpy.

    Args:
        distances: (m,) ascending neighbour distances (all < cutoff).
        vectors: (m, 3) matching neighbour vectors.
    """
    distances, vectors = distances[:k], vectors[:k]
    m = len(distances)
    weight = np.where(distances < cutoff, (1.0 - (distances / cutoff) ** 2) ** 2, 0.0)
    x1 = np.zeros(k)
    x1[:m] = weight / distances
    x1 = np.sort(x1)[::-1]
    s = np.zeros((k, k))
    for a in range(m):
        for b in range(m):
            if a != b:
                r_ab = np.linalg.norm(vectors[a] - vectors[b])
                s[a, b] = np.sqrt(weight[a] * weight[b]) / r_ab
    rows = -np.sort(-s, axis=1)[:, : k - 1]
    x2 = rows.sum(axis=0) / k
    return np.concatenate([x1, x2])


def reference_descriptors(atoms: Atoms, k: int, cutoff: float) -> np.ndarray:
    """Reference descriptor matrix of a structure (brute-force neighbours, numpy descriptor)."""
    neighbours = brute_force_neighbours(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    return np.stack([reference_descriptor(d, v, k, cutoff) for d, v in neighbours])


def boundary_ties(atoms: Atoms, k: int, cutoff: float, tol: float = 1e-8) -> np.ndarray:
    """Rows whose k-th and (k+1)-th neighbours (both inside the cutoff) are tied in distance.

    For such an atom it is arbitrary which tied candidate takes the last slot; x1 does not
    depend on the choice but x2 does (by up to ~1e-3), so x2 of these rows may legitimately
    differ between implementations, between permuted copies, or after a rotation. Periodic
    structures always have such ties between the images +v and -v of an atom itself.

    A one-atom cell is an inversion centre of its own lattice: swapping +v for -v maps the
    neighbour set onto its mirror image, which leaves x2 unchanged, so there a tie is flagged
    only when the tied shell has more than such a pair (a degenerate lattice, e.g. fcc).
    """
    n = len(atoms)
    tied = np.zeros(n, dtype=bool)
    distances = brute_force_distances(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    for i, d in enumerate(distances):
        if len(d) > k and d[k] - d[k - 1] < tol:
            shell = np.count_nonzero(np.abs(d - d[k - 1]) < tol)
            tied[i] = n > 1 or shell > 2
    return tied


def assert_rows_close(actual, expected, k, tied=None, atol=1e-9, what=""):
    """Compares descriptor matrices: x1 on every row, x2 on rows that have no boundary tie."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual[:, :k], expected[:, :k], rtol=0, atol=atol, err_msg=what)
    keep = np.ones(len(actual), dtype=bool) if tied is None else ~np.asarray(tied)
    np.testing.assert_allclose(
        actual[keep, k:], expected[keep, k:], rtol=0, atol=atol, err_msg=f"x2 {what}"
    )


# --------------------------------------------------------------------------------------------
# Structure builders (deterministic given a seed)
# --------------------------------------------------------------------------------------------


def rattle(atoms: Atoms, stdev: float, rng: np.random.Generator) -> Atoms:
    atoms = atoms.copy()
    atoms.positions = atoms.positions + rng.normal(0.0, stdev, atoms.positions.shape)
    return atoms


def random_rotation(rng: np.random.Generator, proper: bool = True) -> np.ndarray:
    """Uniform random orthogonal matrix (det +1 when ``proper``, else det -1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q[:, 0] = -q[:, 0]
    return q


def random_cell(rng, volume, shear=0.6, right_handed=True) -> np.ndarray:
    """Random triclinic cell of the given volume: sheared, then rotated to a generic orientation."""
    lengths = rng.uniform(0.7, 1.4, 3)
    lengths *= (volume / np.prod(lengths)) ** (1 / 3)
    a, b, c = lengths
    s1, s2, s3 = rng.uniform(-shear, shear, 3)
    cell = np.array([[a, 0.0, 0.0], [s1 * a, b, 0.0], [s2 * a, s3 * b, c]])
    cell = cell @ random_rotation(rng).T
    if not right_handed:
        cell = cell[[1, 0, 2]]
    return cell


def random_positions_in_cell(rng, cell, pbc, n_atoms, min_dist=0.8, symbol="Cu", tries=200):
    """Random positions (fractional uniform in the cell) with every distance >= min_dist."""
    atoms = Atoms(cell=cell, pbc=pbc)
    for _ in range(tries * n_atoms):
        if len(atoms) == n_atoms:
            break
        candidate = atoms.copy()
        candidate.append(symbol)
        candidate.positions[-1] = rng.uniform(0.0, 1.0, 3) @ cell
        if min_distance(candidate, probe=min_dist + 0.1) >= min_dist:
            atoms = candidate
    if len(atoms) < n_atoms:
        raise RuntimeError("could not place the atoms; enlarge the cell")
    return atoms


_CRYSTALS = {
    # (builder, repeats keeping the atom count small)
    "fcc": (lambda: bulk("Cu", "fcc", a=3.61), [(2, 1, 1), (1, 2, 2), (2, 2, 2), (3, 1, 2)]),
    "bcc": (lambda: bulk("Fe", "bcc", a=2.87, cubic=True), [(1, 1, 1), (2, 1, 1), (2, 2, 1)]),
    "hcp": (lambda: bulk("Mg", "hcp", a=3.21, c=5.21), [(1, 1, 1), (2, 1, 1), (2, 2, 1)]),
    "diamond": (lambda: bulk("Si", "diamond", a=5.43), [(1, 1, 1), (2, 1, 1), (2, 2, 1)]),
}

_MOLECULES = ["H2O", "NH3", "CH4", "C2H6", "CH3CH2OH"]

PERIODIC_KINDS = ("fcc", "bcc", "hcp", "diamond", "one_atom", "skewed_small", "triclinic")
OPEN_KINDS = ("cluster", "molecule")


def build_structure(kind: str, seed: int) -> Atoms:
    """A structure of the given kind, free of distance ties (rattled or random).

    Kinds: rattled crystals ``fcc``, ``bcc``, ``hcp``, ``diamond`` (2-8 atoms);
    ``one_atom`` (random generic triclinic one-atom cell, all neighbours are images of itself);
    ``skewed_small`` (2-3 atoms in a strongly sheared cell smaller than the cutoff);
    ``triclinic`` (4-10 random atoms in a random triclinic cell, distances >= 0.8 A);
    ``cluster`` (open rattled fcc fragment with vacancies, 11-16 atoms) and ``molecule``
    (rattled small molecule with fewer atoms than the usual k), both with pbc False.
    """
    rng = np.random.default_rng(seed)
    if kind in _CRYSTALS:
        builder, repeats = _CRYSTALS[kind]
        atoms = builder().repeat(repeats[rng.integers(len(repeats))])
        return rattle(atoms, rng.uniform(0.04, 0.1), rng)
    if kind == "one_atom":
        while True:
            cell = random_cell(rng, volume=rng.uniform(10.0, 18.0), shear=0.5)
            atoms = Atoms("Cu", positions=[rng.uniform(-2, 2, 3)], cell=cell, pbc=True)
            if min_distance(atoms) >= 1.6:
                return atoms
    if kind == "skewed_small":
        n = int(rng.integers(2, 4))
        cell = random_cell(rng, volume=14.0 * n, shear=1.5)
        return random_positions_in_cell(rng, cell, True, n, min_dist=1.0)
    if kind == "triclinic":
        n = int(rng.integers(4, 11))
        cell = random_cell(rng, volume=rng.uniform(11.0, 20.0) * n, shear=0.8)
        return random_positions_in_cell(rng, cell, True, n, min_dist=0.8)
    if kind == "cluster":
        fragment = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
        middle = fragment.positions.mean(axis=0)
        centre = fragment.positions[np.argmin(np.linalg.norm(fragment.positions - middle, axis=1))]
        chosen = np.linalg.norm(fragment.positions - centre, axis=1) <= 3.7  # 19 atoms
        assert chosen.sum() == 19
        # Vacancies make it irregular and keep it at 11-16 atoms.
        chosen[rng.choice(np.flatnonzero(chosen), rng.integers(3, 9), replace=False)] = False
        positions = (fragment.positions[chosen] - centre) @ random_rotation(rng).T
        atoms = Atoms("Cu" * int(chosen.sum()), positions=positions, pbc=False)
        return rattle(atoms, 0.06, rng)
    if kind == "molecule":
        atoms = molecule(_MOLECULES[rng.integers(len(_MOLECULES))])
        atoms.pbc = False
        return rattle(atoms, 0.03, rng)
    raise ValueError(f"unknown structure kind {kind!r}")


def binary_alloy(seed: int, repeat=(2, 2, 2), stdev=0.06) -> Atoms:
    """Rattled fcc Au/Ag solid solution in the primitive cell (periodic, both species present)."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Au", "fcc", a=4.08).repeat(repeat)
    symbols = np.array(["Au"] * len(atoms))
    n_ag = int(rng.integers(1, len(atoms)))
    symbols[rng.choice(len(atoms), n_ag, replace=False)] = "Ag"
    atoms.set_chemical_symbols(symbols.tolist())
    return rattle(atoms, stdev, rng)


# --------------------------------------------------------------------------------------------
# Hypothesis strategies
# --------------------------------------------------------------------------------------------

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def structures(draw, kinds=PERIODIC_KINDS + OPEN_KINDS):
    """Draws a structure kind and a seed; notes both so a failure can be rebuilt."""
    kind = draw(st.sampled_from(kinds))
    seed = draw(seeds)
    atoms = build_structure(kind, seed)
    note(f"build_structure({kind!r}, {seed})  ->  {len(atoms)} atoms, pbc={atoms.pbc.tolist()}")
    return atoms


def tolerance(dtype, float32: float, float64: float) -> float:
    """The tolerance for results of ``dtype``: ``float32`` or ``float64``."""
    return float64 if np.dtype(dtype) == np.float64 else float32


# --------------------------------------------------------------------------------------------
# Compilation counting
# --------------------------------------------------------------------------------------------


class _CompileCounter(logging.Handler):
    """Collects the names in JAX's "Compiling ..." log records."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names.append(message.split(" with ")[0])


@contextlib.contextmanager
def count_compilations():
    """Yields the list of programs JAX compiles inside the block (``jax.log_compiles``)."""
    import jax

    counter = _CompileCounter()
    logger = logging.getLogger("jax")
    logger.addHandler(counter)
    try:
        with jax.log_compiles(True):
            yield counter.names
    finally:
        logger.removeHandler(counter)
