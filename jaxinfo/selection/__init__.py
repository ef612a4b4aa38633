"""Selecting informative subsets of structures (the peer package's "compression").

Every method takes ``per_structure``, a list of (n_i, d) descriptor arrays (one per structure),
and returns the indices of ``size`` distinct structures **in selection order** as an int64 numpy
array. :func:`select` dispatches on ``method``; each function's docstring gives the details:

* ``"msc"`` (:func:`select_msc`): greedy minimum set coverage, seeded by the highest own entropy
  H_s; each step adds the structure maximising ``-log(min_{e in s} A_e) + H_s``, A_e the kernel
  sum of environment e over all environments selected so far (kept in log space).
* ``"msc_conditional"`` (:func:`select_msc_conditional`): msc with A_e starting from a
  ``reference`` set already held, and no seed step.
* ``"fps"`` (:func:`select_fps`): farthest-point sampling with the mean pairwise environment
  distance between structures.
* ``"kmeans"`` (:func:`select_kmeans`): one representative per k-means cluster of mean
  descriptors, most populated clusters first.
* ``"random"`` (:func:`select_random`): a prefix of a seeded permutation.
* ``"gradient"`` (:func:`select_gradient`): relaxed inclusion weights ascended by projected
  Adam, rounded to the best subset and polished by swaps.

Matching the peer (quests 2026.2.22, ``quests.compression.fps``): seeds and every greedy step
break ties by the lowest structure index (``numpy.argmax``), as the peer does; msc uses
min over environments of A_e exactly as the peer (min of log A_e is the same number). The one
deliberate difference: the peer accumulates A_e in linear space, so an environment farther than
about 38 h from every selected one gets A_e = 0 and a score of +inf, and all such structures tie
at +inf (the lowest index wins, whatever its entropy). Here A_e is kept in log space, so the
novelty stays finite and such structures are still ranked by novelty plus entropy. Away from
that underflow regime the selections are identical. The peer's fps uses the same distance and
seed. Its baselines are not parity targets: its k_means (scikit-learn) draws a random member of
each cluster and skips the last cluster label, and its random_sample uses the unseeded
``random`` module.

Entropy-driven selections (msc, gradient) favour the most diverse environments; they maximise
coverage of environment space, which need not be what a given model's error needs
(``experiments/selection.py`` compares them with k-means and random on a regression task).

Entropies are in nats, bandwidths h in 1/Angstrom. Descriptors keep their dtype (float32 by
default, float64 with JAX x64 enabled).
"""

import numpy as np

from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.selection.baselines import kmeans, select_fps, select_kmeans, select_random
from jaxinfo.selection.coverage import select_msc, select_msc_conditional
from jaxinfo.selection.gradient import (
    AscentState,
    GradientResult,
    capped_simplex_ascent,
    select_gradient,
)
from jaxinfo.selection.summaries import (
    selection_summary,
    sequential_metrics,
    structure_entropies,
    weighted_entropy,
)

__all__ = [
    "METHODS",
    "AscentState",
    "GradientResult",
    "capped_simplex_ascent",
    "kmeans",
    "select",
    "select_fps",
    "select_gradient",
    "select_kmeans",
    "select_msc",
    "select_msc_conditional",
    "select_random",
    "selection_summary",
    "sequential_metrics",
    "structure_entropies",
    "weighted_entropy",
]

#: Names accepted by :func:`select`.
METHODS = ("msc", "msc_conditional", "fps", "kmeans", "random", "gradient")


def select(
    per_structure,
    size: int,
    method: str = "msc",
    h=DEFAULT_BANDWIDTH,
    *,
    seed: int = 0,
    reference=None,
    **options,
) -> np.ndarray:
    """Selects ``size`` structures that keep the information of a dataset.

    Args:
        per_structure: list of (n_i, d) descriptor arrays, one per structure (for example
            ``[jaxinfo.descriptors(atoms) for atoms in frames]``).
        size: number of structures to select, 1 <= size <= len(per_structure).
        method: one of ``"msc"``, ``"msc_conditional"``, ``"fps"``, ``"kmeans"``,
            ``"random"``, ``"gradient"`` (see the module docstring).
        h: bandwidth in 1/Angstrom (msc, msc_conditional, fps seed, gradient).
        seed: random seed (kmeans, random, gradient; msc, msc_conditional and fps are
            deterministic and ignore it).
        reference: (m, d) descriptors already held; required by and only used with
            ``"msc_conditional"``.
        **options: passed to the method's function (for example ``steps=`` for gradient,
            ``n_init=`` for kmeans, ``entropies=`` for msc and fps).

    Returns:
        (size,) int64 numpy array of distinct structure indices in selection order.

    Raises:
        ValueError: empty or malformed input, inconsistent descriptor widths, size outside
            [1, n], an unknown method, a missing reference or one of the wrong width.

    Example:
        >>> import numpy as np
        >>> from jaxinfo.selection import select
        >>> rng = np.random.default_rng(0)
        >>> structures = [rng.normal(scale=0.02, size=(8, 4)) for _ in range(5)]
        >>> sorted(select(structures, 3, method="random", seed=1).tolist())
        [0, 1, 4]
    """
    if method not in METHODS:
        raise ValueError(
            f"unknown selection method {method!r}; valid methods: {', '.join(METHODS)}"
        )
    if reference is not None and method != "msc_conditional":
        raise ValueError(f"reference= is only used by method 'msc_conditional', not {method!r}")
    if method == "msc":
        return select_msc(per_structure, size, h, **options)
    if method == "msc_conditional":
        return select_msc_conditional(per_structure, size, reference, h, **options)
    if method == "fps":
        return select_fps(per_structure, size, h, **options)
    if method == "kmeans":
        return select_kmeans(per_structure, size, seed=seed, **options)
    if method == "random":
        return select_random(per_structure, size, seed=seed, **options)
    return select_gradient(per_structure, size, h, seed=seed, **options)
