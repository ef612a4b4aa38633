"""Helpers for the kernel, estimator and sharding tests.

Dense numpy references (independent of :mod:`jaxinfo.kernels`), descriptor-like data
generators, hypothesis strategies, cached realistic descriptor sets and a finite-difference
gradient. Reference structures are rebuilt from the peer's JSON with ``helpers``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from ase.build import bulk
from hypothesis import note
from hypothesis import strategies as st

# --------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------

#: Perfect crystals whose k-th neighbour (k = 32, rc = 5) falls inside a degenerate shell.
#: Which members of the shell are kept is arbitrary, so jaxinfo's x2 columns legitimately differ
#: from the peer's by up to ~4e-3 there (DESIGN.md 1.1), and any H, D or dH computed from such
#: descriptors cannot match the peer to 1e-9. Parity is only checked on reference entries none of
#: whose structures is in this set; the others are still computed (they must be finite).
TIE_AFFECTED = frozenset({"cu_fcc_perfect", "cu_fcc_prim333", "fe_bcc", "fe_bcc_prim1"})


@functools.lru_cache(maxsize=1)
def reference_descriptors() -> dict:
    """jaxinfo descriptors (float64, k = 32, rc = 5) of every structure of the reference JSON."""
    from helpers import atoms_from_reference, load_reference

    import jaxinfo

    reference = load_reference()
    if reference is None:
        return {}
    with jax.enable_x64(True):
        return {
            name: np.asarray(jaxinfo.descriptors([atoms_from_reference(entry)], dtype=np.float64))
            for name, entry in reference["structures"].items()
        }


def tie_free(names) -> bool:
    """True when none of the named reference structures has a degenerate neighbour shell."""
    return not (set(names) & TIE_AFFECTED)


# --------------------------------------------------------------------------------------------
# Realistic descriptor sets
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def rattled_cu_descriptors(n_structures: int = 8, repeat: int = 4, seed: int = 0) -> np.ndarray:
    """float64 descriptors of rattled and "thermal" fcc Cu supercells (4 * repeat^3 atoms each).

    Displacement amplitudes run from 0.02 A (cold, strongly clustered environments) to ~0.2 A
    (hot), and the lattice constant varies by a few per mille, like snapshots of an MD run.
    """
    import jaxinfo

    rng = np.random.default_rng(seed)
    structures = []
    for index in range(n_structures):
        a = 3.61 * (1.0 + rng.uniform(-0.005, 0.005))
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((repeat, repeat, repeat))
        stdev = 0.02 + 0.18 * index / max(n_structures - 1, 1)
        atoms.positions = atoms.positions + rng.normal(0.0, stdev, atoms.positions.shape)
        structures.append(atoms)
    with jax.enable_x64(True):
        return np.asarray(jaxinfo.descriptors(structures, dtype=np.float64))


def rattled_cu_atoms(seed: int = 0, repeat=(2, 1, 1), stdev: float = 0.08, strain: float = 0.03):
    """A small rattled and randomly strained fcc Cu supercell (4 * prod(repeat) atoms).

    Rattling alone keeps the cubic cell, whose images of an atom along b and c stay exactly
    tied (|b| = |c|, b orthogonal to c); a cell derivative breaks such ties in opposite directions,
    so the descriptor has a kink there and finite differences average the one-sided slopes.
    A random strain makes the structure generic.
    """
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    deformation = np.eye(3) + rng.uniform(-strain, strain, (3, 3))
    atoms.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
    atoms.positions = atoms.positions + rng.normal(0.0, stdev, atoms.positions.shape)
    return atoms


# --------------------------------------------------------------------------------------------
# Dense numpy references
# --------------------------------------------------------------------------------------------


def _logsumexp(a, axis):
    peak = np.max(a, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.squeeze(np.log(np.sum(np.exp(a - peak), axis=axis, keepdims=True)) + peak, axis)


def dense_log_kernel_sums(y, x, h, log_weights=None) -> np.ndarray:
    """log sum_j w_j exp(-|y_i - x_j|^2 / 2h^2) with the full (M, N) matrix; (M,) or (M, n_h)."""
    y, x = np.asarray(y, np.float64), np.asarray(x, np.float64)
    d2 = np.sum((y[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    h = np.asarray(h, np.float64)
    logw = np.zeros(len(x)) if log_weights is None else np.asarray(log_weights, np.float64)
    logits = -d2[..., None] / (2.0 * np.atleast_1d(h) ** 2) + logw[None, :, None]
    out = _logsumexp(logits, axis=1)  # (M, n_h)
    return out[:, 0] if h.ndim == 0 else out


def dense_entropy(x, h) -> np.ndarray:
    log_p = dense_log_kernel_sums(x, x, h)
    return np.log(len(x)) - np.mean(log_p, axis=0)


def dense_diversity(x, h) -> np.ndarray:
    return _logsumexp(-dense_log_kernel_sums(x, x, h), axis=0)


# --------------------------------------------------------------------------------------------
# Synthetic descriptor-like data
# --------------------------------------------------------------------------------------------


def clustered(rng: np.random.Generator, n: int, d: int, h: float, n_clusters=None) -> np.ndarray:
    """n points in a few Gaussian clusters whose spreads and separations are O(h).

    Kernel values between points then span the whole range (0, 1]: neither every pair nearly
    identical (K ~ 1) nor every pair far apart (K ~ 0), so H, D and dH are not trivial. A constant
    offset of ~0.1 in every column mimics descriptor magnitudes.
    """
    n_clusters = n_clusters or int(rng.integers(1, 5))
    centres = 0.1 + rng.normal(0.0, 1.5 * h / np.sqrt(d), (n_clusters, d))
    spread = rng.uniform(0.2, 1.5, n_clusters) * h / np.sqrt(d)
    label = rng.integers(0, n_clusters, n)
    return centres[label] + rng.normal(size=(n, d)) * spread[label, None]


BANDWIDTHS = (0.005, 0.015, 0.05)
#: Row counts drawn by the strategies. Each new array shape costs JAX compilations (of the eager
#: centring/padding ops and of the padded kernel bucket), so the strategies draw from a few
#: sizes (tiny, odd, spanning several padding buckets) rather than from a range.
SIZES = (1, 2, 11, 50)
WIDTH = 6


@st.composite
def descriptor_sets(draw, min_n=1, sizes=SIZES, widths=(WIDTH,), bandwidths=BANDWIDTHS):
    """Draws (x, h): clustered descriptor-like data and a bandwidth."""
    n = draw(st.sampled_from([s for s in sizes if s >= min_n]))
    d = draw(st.sampled_from(widths))
    h = draw(st.sampled_from(bandwidths))
    seed = draw(st.integers(0, 2**32 - 1))
    note(f"clustered(default_rng({seed}), n={n}, d={d}, h={h})")
    return clustered(np.random.default_rng(seed), n, d, h), h


@st.composite
def query_reference_sets(draw, min_n=1, sizes=SIZES, widths=(WIDTH,), bandwidths=BANDWIDTHS):
    """Draws (y, x, h): test set y partly near the reference set x, partly away from it."""
    m = draw(st.sampled_from(sizes))
    n = draw(st.sampled_from([s for s in sizes if s >= min_n]))
    d = draw(st.sampled_from(widths))
    h = draw(st.sampled_from(bandwidths))
    seed = draw(st.integers(0, 2**32 - 1))
    note(f"seed={seed}, m={m}, n={n}, d={d}, h={h}")
    rng = np.random.default_rng(seed)
    both = clustered(rng, m + n, d, h)
    return both[:m], both[m:], h


# --------------------------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------------------------


def central_difference(f, x, eps: float) -> np.ndarray:
    """Full central finite-difference gradient of a scalar function of a float64 array."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (float(f(x + step)) - float(f(x - step))) / (2.0 * eps)
    return grad


def directional_difference(f, x, direction, eps: float) -> float:
    """Central finite difference of f along ``direction``: (f(x + eps v) - f(x - eps v)) / 2eps."""
    x = np.asarray(x, np.float64)
    return (float(f(x + eps * direction)) - float(f(x - eps * direction))) / (2.0 * eps)


def relative_error(actual, expected) -> float:
    """||actual - expected|| / ||expected|| (Frobenius norms)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))
