"""Gradient-based selection: relaxed inclusion weights ascended with optax, rounded, polished."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp

from jaxinfo._validation import check_count, check_positive
from jaxinfo.estimators import DEFAULT_BANDWIDTH
from jaxinfo.kernels import DEFAULT_BLOCK_SIZE, log_kernel_sums
from jaxinfo.selection._data import _check_h, _check_size, _lks, _prepare

__all__ = ["AscentState", "GradientResult", "capped_simplex_ascent", "select_gradient"]

# Above this many (environment, structure) entries the gradient method stops precomputing the
# per-structure kernel-sum matrix and evaluates blocked kernel sums at every step instead.
_MAX_MATRIX_ENTRIES = 1 << 24
# Floor added to inclusion weights inside logarithms (blocked gradient path), so that the
# gradient at w = 0 or w = 1 stays finite; it perturbs kernel sums by < 1e-9 * N.
_WEIGHT_FLOOR = 1e-9


#: Own-structure mixing (lam at the start, lam at the end) of each relaxation; see _mixing.
_SCHEDULES = {"weighted": (0.0, 0.0), "annealed": (0.0, 1.0), "mean_field": (1.0, 1.0)}
_RELAXATIONS = ("auto", *_SCHEDULES)
#: Candidate swaps evaluated per polishing round (the m lowest-gradient selected structures
#: times the m highest-gradient unselected ones).
_SWAP_CANDIDATES = 4


def _relaxed_objective(log_q, w, sizes, owner, objective):
    """Entropy or diversity of the weighted union from the log densities log q_e."""
    env_weights = w[owner]  # v_e = w_{s(e)}
    if objective == "entropy":
        total = jnp.sum(sizes * w)
        return jnp.log(total) - jnp.sum(env_weights * log_q) / total
    return logsumexp(-log_q, b=env_weights)


def _matrix_log_q(w, lam, log_max, scaled, own, floor, owner):
    """log q_e from the per-structure kernel-sum matrix.

    ``scaled[e, t] = exp(log S_et - log_max_e)`` with S_et = sum_{f in t} K(x_e, x_f), its own
    column zeroed; ``own[e]`` is that own column. The own structure enters at weight
    ``w_s + lam (1 - w_s)``; ``floor`` (1e-9 of the row sum) keeps q_e > 0 at w = 0.
    """
    w_own = w[owner]
    r = scaled @ w + own * (w_own + lam * (1.0 - w_own)) + floor
    return log_max + jnp.log(r)


def _blocked_log_q(w, lam, x, own_log, h, owner, block_size):
    """log q_e by blocked kernel sums over all environments at every evaluation."""
    v = w[owner]
    log_sums = log_kernel_sums(
        x, x, h, log_weights=jnp.log(v + _WEIGHT_FLOOR), block_size=block_size
    )
    return jnp.logaddexp(log_sums, jnp.log(lam * (1.0 - v) + _WEIGHT_FLOOR) + own_log)


def _objective_fn(problem, objective, blocked, block_size):
    """f(w, lam): the relaxed objective (exact subset objective at 0/1 weights and lam = 1) of
    ``problem = (arrays, sizes, owner)``; ``arrays`` are the data arguments of the mode's log q."""
    arrays, sizes, owner = problem

    def fn(w, lam):
        if blocked:
            log_q = _blocked_log_q(w, lam, *arrays, owner, block_size)  # arrays: x, own_log, h
        else:
            log_q = _matrix_log_q(w, lam, *arrays, owner)  # arrays: log_max, scaled, own, floor
        return _relaxed_objective(log_q, w, sizes, owner, objective)

    return fn


def _project_capped_simplex(u, size, iterations=64):
    """Euclidean projection onto {0 <= w <= 1, sum w = size}: clip(u - tau, 0, 1), bisecting tau."""
    lo = jnp.min(u) - 1.0
    hi = jnp.max(u)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        too_big = jnp.sum(jnp.clip(u - mid, 0.0, 1.0)) > size
        return jnp.where(too_big, mid, lo), jnp.where(too_big, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    return jnp.clip(u - 0.5 * (lo + hi), 0.0, 1.0)


def _mixing(schedule, t, steps):
    """lam at step t: schedule[0] for the first quarter, a linear ramp to schedule[1] over the
    middle half, schedule[1] for the last quarter."""
    ramp = jnp.clip((t / steps - 0.25) / 0.5, 0.0, 1.0)
    return schedule[0] + (schedule[1] - schedule[0]) * ramp


class AscentState(NamedTuple):
    """State of :func:`capped_simplex_ascent` (a pytree).

    Attributes:
        weights: (n,) inclusion weights in [0, 1] summing to ``size``.
        optimizer_state: the optax state.
        step: int32, steps taken.
    """

    weights: jax.Array
    optimizer_state: object
    step: jax.Array


def capped_simplex_ascent(objective_fn, size, optimizer: optax.GradientTransformation):
    """Projected ascent on {0 <= w <= 1, sum w = size} as optax-style ``(init, update)``.

    ``init(w0) -> AscentState`` starts from w0 (n,) on that set (e.g. ``jnp.full(n, size /
    n)``); ``update(state) -> (state, value)`` feeds −∇ ``objective_fn(w, t)`` (t: the 1-based
    number of the step being taken) to ``optimizer`` and projects the result back onto the set
    (Euclidean projection, by bisection). Both are pure, for ``jax.jit`` and ``jax.lax.scan``;
    :func:`select_gradient` runs them on its relaxed entropy or diversity.
    """
    if not isinstance(size, jax.Array):  # a host number (select_gradient passes an array)
        size = check_positive("size", size)
    value_and_grad = jax.value_and_grad(objective_fn)

    def init(w0):
        if jnp.ndim(w0) != 1 or (isinstance(size, float) and size > jnp.shape(w0)[0]):
            raise ValueError(f"w0 must be (n,) weights with n >= size ({size}), got {w0!r}")
        return AscentState(w0, optimizer.init(w0), jnp.zeros((), jnp.int32))

    def update(state: AscentState):
        w, t = state.weights, state.step + 1
        value, g = value_and_grad(w, t)
        updates, opt_state = optimizer.update(-g, state.optimizer_state, w)  # optax minimises
        w = _project_capped_simplex(optax.apply_updates(w, updates), size)
        return AscentState(w, opt_state, t), value

    return init, update


@functools.partial(
    jax.jit, static_argnames=("steps", "objective", "blocked", "block_size", "optimizer")
)
def _run_ascents(
    w0, schedules, size, learning_rate, problem, *, steps, objective, blocked, block_size,
    optimizer,
):  # fmt: skip
    """``steps`` of :func:`capped_simplex_ascent` on the relaxed objective per schedule of lam
    (vmapped, one compiled function); default optimiser: Adam, its step cosine-decayed from
    ``learning_rate`` to a tenth of it."""
    fn = _objective_fn(problem, objective, blocked, block_size)
    if optimizer is None:
        decay = 0.1 + 0.45 * (1 + jnp.cos(jnp.pi * (jnp.arange(steps) + 1) / steps))
        optimizer = optax.adam(lambda count: learning_rate * decay[count])

    def ascent(schedule):
        mixed = lambda w, t: fn(w, _mixing(schedule, t.astype(w.dtype), steps))  # noqa: E731
        init, update = capped_simplex_ascent(mixed, size, optimizer)
        state, history = jax.lax.scan(lambda s, _: update(s), init(w0), length=steps)
        return state.weights, history

    return jax.vmap(ascent)(schedules)


@functools.partial(jax.jit, static_argnames=("objective", "blocked", "block_size", "grad"))
def _exact(w, problem, *, objective, blocked, block_size, grad=False):
    """Exact objective (lam = 1) of a batch of 0/1 weight vectors, or (value, gradient) at one."""
    fn = _objective_fn(problem, objective, blocked, block_size)
    exact = functools.partial(fn, lam=1.0)
    return jax.value_and_grad(exact)(w) if grad else jax.vmap(exact)(w)


def _top(weights, size):
    """Indices of the ``size`` largest weights, largest first (ties: lowest index)."""
    return np.argsort(-weights, kind="stable")[:size]


class GradientResult(NamedTuple):
    """Details of a gradient selection (``select_gradient(..., return_details=True)``).

    Attributes:
        indices: (size,) selected indices, in order of decreasing relaxed weight.
        weights: (n,) final relaxed weights (in [0, 1], summing to size) of the relaxation
            whose rounding was kept.
        relaxation: name of that relaxation.
        objective: exact objective (entropy or diversity, nats) of the returned subset.
        rounded: exact objective of each relaxation's top-``size`` rounding, by name.
        swaps: number of polishing swaps accepted.
        history: relaxed objective along each ascent, by name, (steps,) each.
    """

    indices: np.ndarray
    weights: np.ndarray
    relaxation: str
    objective: float
    rounded: dict
    swaps: int
    history: dict


def select_gradient(
    per_structure,
    size: int,
    h=DEFAULT_BANDWIDTH,
    *,
    seed: int = 0,
    objective: str = "entropy",
    relaxation: str = "auto",
    steps: int = 300,
    learning_rate: float = 0.05,
    optimizer: optax.GradientTransformation | None = None,
    max_swaps: int | None = None,
    mode: str = "auto",
    block_size: int = DEFAULT_BLOCK_SIZE,
    return_details: bool = False,
):
    """Gradient-based selection: relax inclusion to weights, ascend, round, polish.

    **Relaxation.** Each structure s gets a weight w_s in [0, 1] with sum_s w_s = size (the
    capped simplex: the convex hull of all subsets of that size); its environments inherit
    v_e = w_s. With q_e a weighted kernel density at environment e, the objective is

    * ``objective="entropy"``: ``H(w) = log V - sum_e (v_e / V) log q_e``, ``V = sum_e v_e``;
    * ``objective="diversity"``: ``D(w) = log sum_e v_e / q_e``.

    Two densities, both equal to the kernel sum over the selected environments at 0/1 weights
    (so both objectives are then exactly the entropy or diversity of the selected subset):

    * weighted: ``q_e = sum_f v_f K(x_e, x_f)``, i.e. ``H(w)`` is the weighted entropy
      ``-sum_e v_e/V log(sum_f v_f K(x_e, x_f) / V)`` of :func:`weighted_entropy`;
    * mean field: ``q_e = sum_{f in s(e)} K(x_e, x_f) + sum_{t != s(e)} w_t sum_{f in t}
      K(x_e, x_f)``, the expected kernel sum of e given that its own structure is selected
      when the others are included independently with probabilities w_t.

    The weighted objective is smooth but rewards spreading weight (a fractional weighting acts
    like extra distinct samples), so its optimum is fractional and only its ranking is used; the
    mean-field objective penalises splitting weight between near-duplicates and has optima at or
    near vertices, but flat directions and poorer local optima. ``relaxation`` is one of
    ``"weighted"``, ``"mean_field"``, ``"annealed"`` (weighted for the first quarter of the
    steps, then a linear homotopy to mean field) or ``"auto"`` (default: all three, vmapped in
    one compiled loop, keeping the rounding with the best exact objective).

    **Ascent.** From w = size/n plus seeded noise (``default_rng(seed)``, amplitude 0.05),
    ``steps`` of :func:`capped_simplex_ascent` (default ``optax.adam``, step ``learning_rate``
    cosine-decayed to a tenth; Euclidean projection onto the capped simplex by bisection), all
    in one jit-compiled ``lax.scan``.

    **Rounding.** Each relaxation's weights are rounded to their ``size`` largest (ties: lowest
    index); the rounding with the best exact objective is kept. **Polish** (``max_swaps``,
    default ``size``; 0 disables): gradient-guided swaps on the exact objective: the gradient at
    the 0/1 point ranks the selected structures (lowest first) and the unselected ones
    (highest first); the best improving swap among the top 4 x 4 is applied, until none
    improves. Indices are returned in order of decreasing relaxed weight of the kept
    relaxation.

    **Evaluation.** ``mode="matrix"`` precomputes the (N_env, n) matrix of per-structure kernel
    sums (one blocked :func:`jaxinfo.log_kernel_sums` per structure; O(N_env^2) once), after
    which every evaluation is a matrix-vector product. ``mode="blocked"`` evaluates
    ``log_kernel_sums(x, x, h, log_weights=log v)`` (differentiable with respect to the
    log-weights) at every step: memory O(block^2), time O(N_env^2) per step and per relaxation.
    ``mode="auto"`` takes the matrix when it has at most 2^24 entries.

    Args:
        per_structure: list of (n_i, d) descriptor arrays.
        size: number of structures to select.
        h: bandwidth in 1/Angstrom.
        seed: seed of the initial noise.
        objective: ``"entropy"`` or ``"diversity"``.
        relaxation: ``"auto"``, ``"weighted"``, ``"mean_field"`` or ``"annealed"``.
        steps: number of ascent steps.
        learning_rate: initial Adam step (weights live in [0, 1]).
        optimizer: an optax ``GradientTransformation`` replacing the default Adam (it sees
            −∇ of the relaxed objective; ``learning_rate`` is then unused).
        max_swaps: most polishing swaps (default ``size``; 0 keeps the plain rounding).
        mode: ``"auto"``, ``"matrix"`` or ``"blocked"``.
        block_size: rows/columns per kernel block.
        return_details: return a :class:`GradientResult` instead of the indices.

    Returns:
        (size,) int64 indices in order of decreasing weight, or a :class:`GradientResult`.
    """
    data = _prepare(per_structure)
    size, h = _check_size(size, data.n), _check_h(h)
    if objective not in ("entropy", "diversity"):
        raise ValueError(f"objective must be 'entropy' or 'diversity', got {objective!r}")
    if relaxation not in _RELAXATIONS:
        raise ValueError(f"relaxation must be one of {_RELAXATIONS}, got {relaxation!r}")
    if mode not in ("auto", "matrix", "blocked"):
        raise ValueError(f"mode must be 'auto', 'matrix' or 'blocked', got {mode!r}")
    steps = check_count("steps", steps)
    learning_rate = check_positive("learning_rate", learning_rate)
    max_swaps = size if max_swaps is None else check_count("max_swaps", max_swaps, minimum=0)
    n, n_env = data.n, int(data.x.shape[0])
    dtype = data.x.dtype
    if mode == "auto":
        mode = "matrix" if n * n_env <= _MAX_MATRIX_ENTRIES else "blocked"
    names = list(_SCHEDULES) if relaxation == "auto" else [relaxation]

    if mode == "matrix":
        log_s = np.stack([_lks(data.x, p, h, block_size) for p in data.parts], axis=1)
        log_max = log_s.max(axis=1)
        scaled = np.exp(log_s - log_max[:, None])
        rows = np.arange(n_env)
        own = scaled[rows, data.owner].copy()
        floor = _WEIGHT_FLOOR * scaled.sum(axis=1)
        scaled[rows, data.owner] = 0.0
        arrays = tuple(jnp.asarray(a, dtype=dtype) for a in (log_max, scaled, own, floor))
    else:
        own_log = np.concatenate([_lks(p, p, h, block_size) for p in data.parts])
        arrays = (jnp.asarray(data.x), jnp.asarray(own_log, dtype=dtype), jnp.asarray(h, dtype))
    static = {"objective": objective, "blocked": mode == "blocked", "block_size": int(block_size)}
    problem = (arrays, jnp.asarray(data.sizes, dtype=dtype), jnp.asarray(data.owner))

    rng = np.random.default_rng(seed)
    w0 = size / n + 0.05 * rng.uniform(-1.0, 1.0, n)
    w0 = _project_capped_simplex(jnp.asarray(w0, dtype=dtype), size)
    schedules = jnp.asarray([_SCHEDULES[name] for name in names], dtype=dtype)
    w_final, history = _run_ascents(
        w0,
        schedules,
        jnp.asarray(size, dtype=dtype),
        jnp.asarray(learning_rate, dtype=dtype),
        problem,
        steps=steps,
        optimizer=optimizer,
        **static,
    )
    w_final = np.asarray(w_final, dtype=np.float64)

    # each relaxation rounded to its top-size subset, as (len(names), n) 0/1 weights
    roundings = np.array([np.isin(np.arange(n), _top(w, size)) for w in w_final], dtype=dtype)
    values = np.asarray(_exact(roundings, problem, **static), dtype=np.float64)
    best = int(np.argmax(values))  # ties: the first relaxation in _SCHEDULES order
    current, value = roundings[best], values[best]

    swaps, m = 0, _SWAP_CANDIDATES
    while swaps < max_swaps and size < n:
        _, grad = _exact(jnp.asarray(current), problem, grad=True, **static)
        grad = np.asarray(grad, dtype=np.float64)
        inside, outside = np.flatnonzero(current), np.flatnonzero(current == 0)
        leave = inside[np.argsort(grad[inside], kind="stable")[:m]]
        enter = outside[np.argsort(-grad[outside], kind="stable")[:m]]
        pairs = [(a, b) for a in leave for b in enter]
        pairs += [pairs[-1]] * (m * m - len(pairs))  # fixed batch shape: one compilation
        trials = np.repeat(current[None], m * m, axis=0)
        for row, (a, b) in enumerate(pairs):
            trials[row, [a, b]] = 0.0, 1.0
        trial_values = np.asarray(_exact(trials, problem, **static), dtype=np.float64)
        k = int(np.argmax(trial_values))
        if not trial_values[k] > value + 1e-12 * max(1.0, abs(value)):
            break
        current, value, swaps = trials[k], trial_values[k], swaps + 1

    weights = w_final[best]
    chosen = np.flatnonzero(current)
    indices = np.array(sorted(chosen, key=lambda i: (-weights[i], i)), dtype=np.int64)
    if return_details:
        history = np.asarray(history, dtype=np.float64)
        return GradientResult(
            indices=indices,
            weights=weights,
            relaxation=names[best],
            objective=float(value),
            rounded=dict(zip(names, values.tolist(), strict=True)),
            swaps=swaps,
            history={name: history[i] for i, name in enumerate(names)},
        )
    return indices
