"""Tests of jaxinfo.selection: parity with the peer's compression, validity, determinism,
the gradient method against random selection, and input errors.

Shapes are kept to a few buckets (synthetic structures of 8/12/16 environments in a fixed
pattern) so that the whole file compiles a handful of kernels and runs in about a minute.
"""

import jax
import numpy as np
import pytest
from ase.build import bulk
from helpers import tolerance

import jaxinfo
from jaxinfo import selection as sel

H = 0.015
SYNTH_H = 0.05
SYNTH_SIZES = (8, 12, 16, 8, 12, 16, 8, 12, 16, 8, 12, 16, 8, 12, 16, 8)  # 16 structures
METHODS = ("msc", "msc_conditional", "fps", "kmeans", "random", "gradient")
FAST_GRADIENT = {"steps": 120}


def synthetic(seed, n_groups=5, dim=5, sizes=SYNTH_SIZES):
    """Structures drawn around a few group centres (near-duplicates inside a group).

    All distances stay below ~15 h (no kernel underflow, where the peer's linear-space sums
    give +inf ties), and continuous draws make exact ties improbable.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0 * SYNTH_H, size=(n_groups, dim))
    out = []
    for n in sizes:
        centre = centres[rng.integers(n_groups)] + rng.normal(scale=0.3 * SYNTH_H, size=dim)
        spread = rng.uniform(0.2, 1.5) * SYNTH_H
        out.append(centre + rng.normal(scale=spread, size=(n, dim)))
    return out


def union_entropy(parts, indices, h):
    return float(jaxinfo.entropy(np.concatenate([parts[i] for i in indices]), h))


# --------------------------------------------------------------------------------------------
# Reference JSON (shared/reference/quests_reference.json, key "compression")
# --------------------------------------------------------------------------------------------

AMPLITUDES = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05) * 2
PERFECT = (0, 6)  # stdev 0: fcc whose 32nd neighbour sits in a degenerate shell (DESIGN 1.1)


def reference_structures():
    """The 12 recipes of the reference (positions are not stored for this block)."""
    structures = []
    for seed, stdev in enumerate(AMPLITUDES):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        if stdev > 0:
            atoms.rattle(stdev=stdev, seed=seed)
        structures.append(atoms)
    return structures


@pytest.fixture(scope="module")
def compression(reference):
    block = reference["compression"]
    assert len(block["structures"]) == len(AMPLITUDES)
    for recipe, stdev in zip(block["structures"], AMPLITUDES, strict=True):
        assert f"stdev={stdev}" in recipe
    return block


_CU12 = {}


@pytest.fixture
def cu12(precision):
    """Descriptors of the reference structures in this run's precision (cached per precision)."""
    if precision not in _CU12:
        _CU12[precision] = [np.asarray(jaxinfo.descriptors(a)) for a in reference_structures()]
    return _CU12[precision]


@pytest.mark.float64_only  # parity with the peer at 1e-9
def test_reference_per_structure_entropy(compression, cu12):
    ours = sel.structure_entropies(cu12, H)
    expected = np.array(compression["per_structure_entropy"])
    rattled = [i for i in range(12) if i not in PERFECT]
    np.testing.assert_allclose(ours[rattled], expected[rattled], rtol=0, atol=1e-9)
    # Perfect crystals: which members of the degenerate 32nd-neighbour shell are kept is
    # arbitrary, so x2 (and this tiny entropy) differs between implementations.
    np.testing.assert_allclose(ours[list(PERFECT)], expected[list(PERFECT)], atol=5e-3)
    assert ours[0] == ours[6]  # identical structures, identical entropies (a tie)


def test_reference_selections(compression, cu12):
    msc = sel.select(cu12, compression["msc"]["size"], "msc", H)
    fps = sel.select(cu12, compression["fps"]["size"], "fps", H)
    # candidates: all 12 structures; reference: the environments of structures 0 and 1
    cond = sel.select(
        cu12,
        compression["msc_conditional"]["size"],
        "msc_conditional",
        H,
        reference=np.concatenate(cu12[:2]),
    )
    assert msc.tolist() == compression["msc"]["selected"]
    assert fps.tolist() == compression["fps"]["selected"]
    assert cond.tolist() == compression["msc_conditional"]["selected"]


@pytest.mark.float64_only  # parity with the peer at 1e-9
def test_reference_summaries(compression, cu12):
    for method in ("msc", "fps"):
        expected = compression[method]["summary"]
        ours = sel.selection_summary(cu12, compression[method]["selected"], H)
        assert set(ours) == set(expected)
        for key in ("overlap", "original_size", "compressed_size", "original_envs"):
            assert ours[key] == expected[key]
        assert ours["compressed_envs"] == expected["compressed_envs"]
        # The subsets contain the perfect crystal 0, whose descriptors differ (tie, see above).
        for key in ("entropy", "diversity"):
            assert ours[key] == pytest.approx(expected[key], abs=5e-3)
    steps = sel.sequential_metrics(cu12, compression["msc"]["selected"], H)
    for ours, expected in zip(steps, compression["sequential_metrics_msc"], strict=True):
        assert ours["n_envs"] == expected["n_envs"]
        assert ours["n_structs"] == expected["n_structs"]
        # prefixes [5] and [5, 11] hold rattled structures only: exact; later ones hold 0
        tol = 1e-9 if ours["n_structs"] <= 2 else 5e-3
        assert ours["entropy"] == pytest.approx(expected["entropy"], abs=tol)
        assert ours["diversity"] == pytest.approx(expected["diversity"], abs=tol)


@pytest.mark.float64_only  # parity with the peer at 1e-9
@pytest.mark.peer
def test_reference_exact_with_peer_descriptors(compression):
    """With the peer's own descriptors every reference number is reproduced to 1e-9."""
    pytest.importorskip("quests")
    from quests.descriptor import get_descriptors

    parts = [get_descriptors([a], k=32, cutoff=5.0) for a in reference_structures()]
    np.testing.assert_allclose(
        sel.structure_entropies(parts, H), compression["per_structure_entropy"], atol=1e-9
    )
    for method in ("msc", "fps"):
        chosen = sel.select(parts, compression[method]["size"], method, H)
        assert chosen.tolist() == compression[method]["selected"]
        ours = sel.selection_summary(parts, chosen, H)
        for key, value in compression[method]["summary"].items():
            assert ours[key] == pytest.approx(value, abs=1e-9, rel=0), key
    cond = sel.select_msc_conditional(parts, 3, parts[:2], H)
    assert cond.tolist() == compression["msc_conditional"]["selected"]
    steps = sel.sequential_metrics(parts, compression["msc"]["selected"], H)
    for ours, expected in zip(steps, compression["sequential_metrics_msc"], strict=True):
        for key, value in expected.items():
            assert ours[key] == pytest.approx(value, abs=1e-9, rel=0), key


# --------------------------------------------------------------------------------------------
# Live parity with the peer (same descriptors fed to both implementations)
# --------------------------------------------------------------------------------------------


def _peer_entropies(parts, h):
    from quests.entropy import entropy as peer_entropy

    return np.array([peer_entropy(p, h=h) for p in parts])


@pytest.mark.float64_only  # parity with the peer at 1e-9
@pytest.mark.peer
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_peer_parity_synthetic(seed):
    pytest.importorskip("quests")
    from quests.compression.fps import fps, msc, msc_conditional

    parts = synthetic(seed)
    peer_h = _peer_entropies(parts, SYNTH_H)
    np.testing.assert_allclose(sel.structure_entropies(parts, SYNTH_H), peer_h, atol=1e-9)
    size = 9
    expected = [int(i) for i in msc(parts, peer_h, size, h=SYNTH_H)]
    assert sel.select(parts, size, "msc", SYNTH_H).tolist() == expected
    expected = [int(i) for i in fps(parts, peer_h, size)]
    assert sel.select(parts, size, "fps", SYNTH_H).tolist() == expected
    candidates, held = parts[4:], parts[:4]
    expected = [
        int(i) for i in msc_conditional(candidates, peer_h[4:], 6, reference=held, h=SYNTH_H)
    ]
    ours = sel.select(candidates, 6, "msc_conditional", SYNTH_H, reference=np.concatenate(held))
    assert ours.tolist() == expected


@pytest.mark.float64_only  # parity with the peer at 1e-9
@pytest.mark.peer
def test_peer_parity_rattled_structures():
    """Rattled fcc Cu of varied amplitude and cell, our descriptors fed to both codes."""
    pytest.importorskip("quests")
    from quests.compression.compress import DatasetCompressor
    from quests.compression.fps import fps, msc

    rng = np.random.default_rng(7)
    structures = []
    for _ in range(10):
        repeat = ((1, 2, 2), (2, 2, 2))[rng.integers(2)]
        atoms = bulk("Cu", "fcc", a=float(rng.uniform(3.55, 3.7)), cubic=True).repeat(repeat)
        atoms.rattle(stdev=float(rng.uniform(0.005, 0.12)), seed=int(rng.integers(10**6)))
        structures.append(atoms)
    parts = [np.asarray(jaxinfo.descriptors(a)) for a in structures]
    peer_h = _peer_entropies(parts, H)
    size = 6
    ours_msc = sel.select(parts, size, "msc", H)
    assert ours_msc.tolist() == [int(i) for i in msc(parts, peer_h, size, h=H)]
    assert sel.select(parts, size, "fps", H).tolist() == [int(i) for i in fps(parts, peer_h, size)]
    # Summary against the peer's DatasetCompressor.get_summary on the same descriptors.
    compressor = DatasetCompressor(parts, descriptor_fn=lambda x: x, bandwidth=H)
    expected = compressor.get_summary(ours_msc.tolist())
    ours = sel.selection_summary(parts, ours_msc, H)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-9, rel=0), key


# --------------------------------------------------------------------------------------------
# Semantics that do not need the peer
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parts():
    return synthetic(11)


def _select(parts, size, method, seed=0):
    options = FAST_GRADIENT if method == "gradient" else {}
    reference = np.concatenate(parts[:2]) if method == "msc_conditional" else None
    return sel.select(parts, size, method, SYNTH_H, seed=seed, reference=reference, **options)


@pytest.mark.parametrize("method", METHODS)
def test_valid_unique_indices(parts, method):
    n = len(parts)
    for size in (1, 5, n):
        chosen = _select(parts, size, method)
        assert isinstance(chosen, np.ndarray) and chosen.dtype == np.int64
        assert chosen.shape == (size,)
        assert len(set(chosen.tolist())) == size
        assert chosen.min() >= 0 and chosen.max() < n


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_for_a_seed(parts, method):
    first = _select(parts, 6, method, seed=3)
    second = _select(parts, 6, method, seed=3)
    np.testing.assert_array_equal(first, second)


def test_seed_changes_random():
    parts = synthetic(0)
    draws = {tuple(sel.select(parts, 6, "random", seed=s).tolist()) for s in range(4)}
    assert len(draws) > 1
    assert sel.select(parts, 6, "random", seed=2).tolist() == (
        np.random.default_rng(2).permutation(len(parts))[:6].tolist()
    )


def test_greedy_selections_are_prefix_consistent(parts):
    for method in ("msc", "fps"):
        long = sel.select(parts, 10, method, SYNTH_H)
        short = sel.select(parts, 4, method, SYNTH_H)
        np.testing.assert_array_equal(long[:4], short)


def test_msc_ties_go_to_the_lowest_index(parts):
    rng = np.random.default_rng(5)
    far = parts[0].mean(axis=0) + 8 * SYNTH_H + rng.normal(scale=0.1 * SYNTH_H, size=(8, 5))
    data = [*parts[:2], far, *parts[2:6], far.copy(), *parts[6:]]  # 2 and 7 identical, novel
    chosen = sel.select_msc(data, 4, SYNTH_H)
    assert chosen[1] == 2  # both copies tie on novelty + entropy: the lower index wins
    assert 7 not in chosen  # then the copy is fully covered
    flat = sel.select_msc(data, 2, SYNTH_H, entropies=np.ones(len(data)))
    assert flat[0] == 0  # every entropy ties for the seed: index 0


def test_msc_first_step_matches_definition(parts):
    """The second pick maximises -log(min_e A_e) + H_s, with A_e from the seed structure."""
    entropies = sel.structure_entropies(parts, SYNTH_H)
    chosen = sel.select_msc(parts, 2, SYNTH_H)
    seed = int(np.argmax(entropies))
    assert chosen[0] == seed
    scores = np.full(len(parts), -np.inf)
    for s, p in enumerate(parts):
        if s != seed:
            log_a = np.asarray(jaxinfo.log_kernel_sums(p, parts[seed], SYNTH_H))
            scores[s] = -log_a.min() + entropies[s]
    assert chosen[1] == int(np.argmax(scores))


def test_fps_distance_definition(parts):
    """The second fps pick is the structure of largest mean pairwise distance to the seed."""
    chosen = sel.select_fps(parts, 2, SYNTH_H)
    seed = chosen[0]
    mean_d = [
        -np.inf
        if s == seed
        else np.mean(np.linalg.norm(p[:, None, :] - parts[seed][None, :, :], axis=-1))
        for s, p in enumerate(parts)
    ]
    assert chosen[1] == int(np.argmax(mean_d))


def test_msc_conditional_reference_forms(parts):
    held, candidates = parts[:3], parts[3:]
    as_array = sel.select(candidates, 5, "msc_conditional", SYNTH_H, reference=np.concatenate(held))
    as_list = sel.select_msc_conditional(candidates, 5, held, SYNTH_H)
    np.testing.assert_array_equal(as_array, as_list)
    # an empty reference falls back to plain msc, as in the peer
    empty = sel.select_msc_conditional(candidates, 5, np.zeros((0, 5)), SYNTH_H)
    np.testing.assert_array_equal(empty, sel.select(candidates, 5, "msc", SYNTH_H))


def test_kmeans_with_duplicates_returns_distinct_indices():
    base = synthetic(2)[:4]
    parts = base * 3  # only 4 distinct structures
    chosen = sel.select(parts, 7, "kmeans", seed=1)
    assert len(set(chosen.tolist())) == 7


def test_kmeans_orders_clusters_by_size():
    rng = np.random.default_rng(0)
    big = [rng.normal(size=(8, 3)) * 0.01 for _ in range(6)]
    small = [rng.normal(size=(8, 3)) * 0.01 + 5.0 for _ in range(2)]
    chosen = sel.select(big + small, 2, "kmeans", seed=0)
    assert chosen[0] < 6 <= chosen[1]  # the 6-member cluster first


def test_summary_and_sequential_agree_with_estimators(parts, dtype):
    tol = tolerance(dtype, float32=1e-5, float64=1e-12)
    chosen = [3, 7, 1, 12]
    summary = sel.selection_summary(parts, chosen, SYNTH_H)
    subset = np.concatenate([parts[i] for i in chosen])
    full = np.concatenate(parts)
    assert summary["entropy"] == pytest.approx(float(jaxinfo.entropy(subset, SYNTH_H)), abs=tol)
    assert summary["diversity"] == pytest.approx(float(jaxinfo.diversity(subset, SYNTH_H)), abs=tol)
    assert summary["overlap"] == pytest.approx(float(jaxinfo.overlap(full, subset, SYNTH_H)))
    assert summary["compressed_envs"] == len(subset)
    assert summary["original_envs"] == len(full)
    assert sel.selection_summary(parts, range(len(parts)), SYNTH_H)["overlap"] == 1.0
    for k, row in enumerate(sel.sequential_metrics(parts, chosen, SYNTH_H), start=1):
        assert row["entropy"] == pytest.approx(union_entropy(parts, chosen[:k], SYNTH_H), abs=tol)


def test_float32_inputs_select_the_same(parts):
    with jax.enable_x64(False):
        parts32 = [p.astype(np.float32) for p in parts]
        msc32 = sel.select(parts32, 6, "msc", SYNTH_H)
        fps32 = sel.select(parts32, 6, "fps", SYNTH_H)
        grad32 = sel.select(parts32, 6, "gradient", SYNTH_H, **FAST_GRADIENT)
    np.testing.assert_array_equal(msc32, sel.select(parts, 6, "msc", SYNTH_H))
    np.testing.assert_array_equal(fps32, sel.select(parts, 6, "fps", SYNTH_H))
    assert len(set(grad32.tolist())) == 6


# --------------------------------------------------------------------------------------------
# Gradient selection
# --------------------------------------------------------------------------------------------


@pytest.mark.float64_only  # central differences at 1e-6 need float64
def test_weighted_entropy():
    x = np.concatenate(synthetic(4)[:4])
    log_w = np.where(np.arange(len(x)) < 20, 0.0, -np.inf)
    assert float(sel.weighted_entropy(x, log_w, SYNTH_H)) == pytest.approx(
        float(jaxinfo.entropy(x[:20], SYNTH_H)), abs=1e-12
    )
    uniform = np.full(len(x), np.log(0.3))  # scale invariant
    assert float(sel.weighted_entropy(x, uniform, SYNTH_H)) == pytest.approx(
        float(jaxinfo.entropy(x, SYNTH_H)), abs=1e-12
    )
    grad = jax.grad(lambda lw: sel.weighted_entropy(x, lw, SYNTH_H))(log_w)
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[20:] == 0.0)
    # against central finite differences at a generic point
    lw = np.random.default_rng(0).normal(size=len(x))
    grad = np.asarray(jax.grad(lambda v: sel.weighted_entropy(x, v, SYNTH_H))(lw))
    for i in (0, 17, 40):
        step = np.zeros_like(lw)
        step[i] = 1e-6
        fd = (
            float(sel.weighted_entropy(x, lw + step, SYNTH_H))
            - float(sel.weighted_entropy(x, lw - step, SYNTH_H))
        ) / 2e-6
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_gradient_objective_is_exact_at_the_returned_subset(parts):
    result = sel.select_gradient(parts, 5, SYNTH_H, return_details=True, **FAST_GRADIENT)
    assert result.objective == pytest.approx(
        union_entropy(parts, result.indices, SYNTH_H), abs=1e-6
    )
    assert result.weights.sum() == pytest.approx(5.0, abs=1e-6)
    assert np.all((result.weights >= 0) & (result.weights <= 1))
    assert set(result.rounded) == {"weighted", "annealed", "mean_field"}
    assert result.objective >= max(result.rounded.values()) - 1e-9  # polishing never loses


def test_capped_simplex_ascent_steps_compose_in_a_user_loop(parts, dtype):
    """A user's jitted loop of ``update`` equals ``lax.scan`` over it, stays on the capped
    simplex at every step and raises the weighted entropy of the union."""
    import jax.numpy as jnp
    import optax

    x = jnp.asarray(np.concatenate(parts), dtype)
    owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    size, n = 5.0, len(parts)

    def objective(w, t):  # t, the step number, is unused here
        return sel.weighted_entropy(x, jnp.log(w[owner] + 1e-9), SYNTH_H)

    init, update = sel.capped_simplex_ascent(objective, size, optax.adam(0.05))
    state = init(jnp.full(n, size / n, dtype))
    step = jax.jit(update)
    values = []
    for _ in range(25):
        state, value = step(state)
        values.append(float(value))
        w = np.asarray(state.weights)
        assert np.all((w >= 0) & (w <= 1)) and w.sum() == pytest.approx(size, rel=1e-5)
    scanned, history = jax.lax.scan(lambda s, _: update(s), init(jnp.full(n, size / n, dtype)),
                                    length=25)  # fmt: skip
    np.testing.assert_allclose(scanned.weights, state.weights, atol=1e-6)
    np.testing.assert_allclose(history, values, rtol=1e-6)
    assert int(state.step) == 25 and values[-1] > values[0] + 0.1


def test_capped_simplex_ascent_bad_input():
    import jax.numpy as jnp
    import optax

    def objective(w, t):
        return -jnp.sum(w * w)

    for size in (0, -1.0, float("nan"), None):
        with pytest.raises(ValueError, match="size"):
            sel.capped_simplex_ascent(objective, size, optax.sgd(0.1))
    init, _ = sel.capped_simplex_ascent(objective, 3, optax.sgd(0.1))
    for w0 in (jnp.full(2, 0.5), jnp.full((2, 2), 0.5)):
        with pytest.raises(ValueError, match="w0"):
            init(w0)


def test_select_gradient_takes_an_optax_optimizer(parts):
    """With a zero-step optimiser the weights stay at their seeded start: the optimiser given
    is the one used (Adam, the default, moves them)."""
    import optax

    kwargs = {"steps": 20, "relaxation": "weighted", "return_details": True}
    frozen = sel.select_gradient(parts, 5, SYNTH_H, optimizer=optax.sgd(0.0), **kwargs)
    adam = sel.select_gradient(parts, 5, SYNTH_H, **kwargs)
    start = sel.select_gradient(
        parts, 5, SYNTH_H, optimizer=optax.sgd(0.0), **kwargs | {"steps": 1}
    )
    np.testing.assert_allclose(frozen.weights, start.weights, atol=1e-12)
    assert np.ptp(frozen.history["weighted"]) == 0.0
    assert np.abs(adam.weights - frozen.weights).max() > 1e-2


def test_gradient_matrix_and_blocked_modes_agree(parts):
    small = parts[:8]
    kwargs = {"steps": 40, "relaxation": "annealed", "max_swaps": 2, "return_details": True}
    matrix = sel.select_gradient(small, 3, SYNTH_H, mode="matrix", **kwargs)
    blocked = sel.select_gradient(small, 3, SYNTH_H, mode="blocked", **kwargs)
    np.testing.assert_array_equal(matrix.indices, blocked.indices)
    np.testing.assert_allclose(matrix.weights, blocked.weights, atol=1e-5)
    assert matrix.objective == pytest.approx(blocked.objective, abs=1e-6)


def test_gradient_beats_random():
    """Over six datasets: gradient >= random entropy on average and in at least 5 of 6."""
    gains, gains_unpolished = [], []
    for seed in range(6):
        parts = synthetic(100 + seed)
        size = 4
        random_h = np.mean(
            [
                union_entropy(parts, sel.select(parts, size, "random", seed=s), SYNTH_H)
                for s in range(3)
            ]
        )
        result = sel.select_gradient(
            parts, size, SYNTH_H, seed=seed, return_details=True, **FAST_GRADIENT
        )
        gains.append(union_entropy(parts, result.indices, SYNTH_H) - random_h)
        gains_unpolished.append(max(result.rounded.values()) - random_h)
    assert np.mean(gains) > 0 and sum(g >= 0 for g in gains) >= 5, gains
    # the relaxation alone (before the swap polish) already beats random
    assert np.mean(gains_unpolished) > 0 and sum(g >= 0 for g in gains_unpolished) >= 5


def test_gradient_diversity_objective(parts):
    result = sel.select_gradient(
        parts, 5, SYNTH_H, objective="diversity", return_details=True, **FAST_GRADIENT
    )
    subset = np.concatenate([parts[i] for i in result.indices])
    assert result.objective == pytest.approx(float(jaxinfo.diversity(subset, SYNTH_H)), abs=1e-6)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, 17, 2.5, True])
def test_bad_size(parts, size):
    with pytest.raises(ValueError, match="size"):
        sel.select(parts, size, "msc", SYNTH_H)


def test_bad_inputs(parts):
    with pytest.raises(ValueError, match="empty"):
        sel.select([], 1)
    with pytest.raises(ValueError, match="inconsistent descriptor widths"):
        sel.select([parts[0], parts[1][:, :3]], 1)
    with pytest.raises(ValueError, match="2-D"):
        sel.select([parts[0], parts[1][0]], 1)
    with pytest.raises(ValueError, match="no environments"):
        sel.select([parts[0], np.zeros((0, 5))], 1)
    with pytest.raises(ValueError, match="NaN"):
        sel.select([parts[0], np.full((3, 5), np.nan)], 1)
    with pytest.raises(ValueError, match="list of"):
        sel.select(parts[0], 1)
    with pytest.raises(ValueError, match=r"unknown selection method 'best'.*msc, msc_conditional"):
        sel.select(parts, 2, "best")
    with pytest.raises(ValueError, match="single bandwidth"):
        sel.select(parts, 2, "msc", h=[0.01, 0.02])
    with pytest.raises(ValueError, match="bandwidth"):
        sel.select(parts, 2, "msc", h=-1.0)


def test_bad_reference(parts):
    with pytest.raises(ValueError, match="reference width 4 differs"):
        sel.select(parts, 2, "msc_conditional", SYNTH_H, reference=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="needs reference"):
        sel.select(parts, 2, "msc_conditional", SYNTH_H)
    with pytest.raises(ValueError, match="only used by method 'msc_conditional'"):
        sel.select(parts, 2, "msc", SYNTH_H, reference=np.zeros((3, 5)))


def test_bad_options(parts):
    with pytest.raises(ValueError, match="objective"):
        sel.select(parts, 2, "gradient", SYNTH_H, objective="energy")
    with pytest.raises(ValueError, match="relaxation"):
        sel.select(parts, 2, "gradient", SYNTH_H, relaxation="exact")
    with pytest.raises(ValueError, match="entropies"):
        sel.select(parts, 2, "msc", SYNTH_H, entropies=np.zeros(3))
    with pytest.raises(ValueError, match="duplicates"):
        sel.selection_summary(parts, [1, 1], SYNTH_H)
    with pytest.raises(ValueError, match="indices"):
        sel.selection_summary(parts, [0, 99], SYNTH_H)


@pytest.mark.float64_only  # a numpy baseline: no JAX precision involved
def test_kmeans_finds_the_optimum_of_a_small_case():
    import itertools

    rng = np.random.default_rng(3)
    points = np.concatenate([rng.normal(loc=c, scale=0.6, size=(3, 2)) for c in (0, 2, 4)])
    best = np.inf
    for labels in itertools.product(range(3), repeat=len(points)):  # every assignment
        labels = np.asarray(labels)
        if len(set(labels.tolist())) < 3:
            continue
        inertia = sum(
            np.sum((points[labels == c] - points[labels == c].mean(axis=0)) ** 2) for c in range(3)
        )
        best = min(best, inertia)
    for seed in range(3):
        assert sel.kmeans(points, 3, seed=seed)[2] == pytest.approx(best, rel=1e-12)


@pytest.mark.float64_only
def test_kmeans_is_as_good_as_scikit_learn():
    cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 8))
    points = np.concatenate([c + rng.normal(scale=0.7, size=(40, 8)) for c in centres])
    for k in (5, 12, 20):
        ours = sel.kmeans(points, k, seed=0)[2]
        theirs = cluster.KMeans(k, n_init=10, random_state=0).fit(points).inertia_
        assert ours <= theirs * (1 + 1e-3), k
