"""Blocked log-sum-exp kernel sums: values, padding buckets, weights, gradients, memory, retrace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from estimator_helpers import (
    BANDWIDTHS,
    WIDTH,
    central_difference,
    clustered,
    dense_log_kernel_sums,
    query_reference_sets,
)
from helpers import count_compilations, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxinfo
from jaxinfo.kernels import log_kernel_sums, padded_length, prepare_reference


def _rounded(a, dtype):
    """``a`` as the kernel sees it in ``dtype``, back in float64 (for dense references)."""
    return np.asarray(a, dtype).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Values against a dense numpy reference
# --------------------------------------------------------------------------------------------


@settings(max_examples=12)
@given(query_reference_sets())
def test_log_kernel_sums_match_dense_reference(dtype, data):
    """Blocked sums equal log sum_j exp(-|y - x_j|^2 / 2h^2) from the full matrix."""
    y, x, h = data
    actual = np.asarray(log_kernel_sums(y, x, h))
    assert actual.shape == (len(y),)
    assert actual.dtype == dtype
    expected = dense_log_kernel_sums(_rounded(y, dtype), _rounded(x, dtype), h)
    tol = tolerance(dtype, float32=2e-5, float64=1e-10)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


@settings(max_examples=10)
@given(query_reference_sets(), st.integers(0, 2**32 - 1))
def test_weighted_multi_bandwidth_sums_match_dense_reference(dtype, data, seed):
    """With log-weights and a 1-D h the result is (M, n_h) and equals the dense reference."""
    y, x, _ = data
    rng = np.random.default_rng(seed)
    log_weights = rng.normal(size=len(x))
    h = np.array(BANDWIDTHS)
    actual = np.asarray(log_kernel_sums(y, x, h, log_weights=log_weights))
    assert actual.shape == (len(y), len(h))
    expected = dense_log_kernel_sums(
        _rounded(y, dtype), _rounded(x, dtype), h, _rounded(log_weights, dtype)
    )
    tol = tolerance(dtype, float32=2e-5, float64=1e-10)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def test_far_outlier_sum_is_finite_and_exact(dtype):
    """A query 1 /A away from three references at h = 0.015 has log-sum log 3 - 1/2h^2 (~ -2222).

    Every kernel term underflows to zero in plain floating point (the peer then returns +inf for
    dH); the log-sum-exp keeps the exact value.
    """
    x = np.zeros((3, 5))
    y = np.zeros((1, 5))
    y[0, 0] = 1.0
    h = 0.015
    value = float(log_kernel_sums(y, x, h)[0])
    assert np.isfinite(value)
    expected = np.log(3.0) - 1.0 / (2.0 * np.float64(np.asarray(h, dtype)) ** 2)
    assert value == pytest.approx(expected, rel=tolerance(dtype, float32=1e-6, float64=1e-12))


@pytest.mark.float64_only
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
def test_result_dtype_follows_input(input_dtype):
    """With x64 on, float32 descriptors give float32 sums, float64 ones float64 (also 1-D h)."""
    x = np.random.default_rng(0).normal(scale=0.01, size=(20, 4)).astype(input_dtype)
    assert log_kernel_sums(x, x, 0.015).dtype == input_dtype
    assert log_kernel_sums(x, x, np.array([0.01, 0.02])).dtype == input_dtype


@pytest.mark.float32_only
def test_float64_input_without_x64_computes_in_float32():
    """Without x64, float64 input follows JAX's canonical dtype (float32), with no warning."""
    x = np.random.default_rng(0).normal(scale=0.01, size=(20, 4))
    assert log_kernel_sums(x, x, 0.015).dtype == np.float32
    assert jaxinfo.entropy(x, 0.015).dtype == np.float32


# --------------------------------------------------------------------------------------------
# Blocks and padding
# --------------------------------------------------------------------------------------------


@given(st.integers(1, 100_000), st.sampled_from([8, 64, 100, 1024]))
def test_padded_length_covers_rows_with_bounded_waste(n, block_size):
    """Blocks cover n rows; beyond 15 blocks the count is a multiple of 2^(a-3) for
    2^a <= count < 2^(a+1) (8 buckets per doubling), at most 1/8 of the blocks padding."""
    block, count = padded_length(n, block_size)
    assert 1 <= block <= block_size
    assert block * count >= n
    if n > block_size:
        assert block == block_size
        needed = -(-n // block)
        step = 1 << max(needed.bit_length() - 4, 0)
        assert count % step == 0
        assert count - needed < step
        assert count - needed <= count / 8
    else:
        assert count == 1


@settings(max_examples=6)
@given(st.sampled_from([37, 203]), st.integers(0, 2**32 - 1))
def test_block_size_does_not_change_results(dtype, n, seed):
    """block_size 8, 64 and 1024 give the same sums (n not a multiple of any block)."""
    rng = np.random.default_rng(seed)
    x = clustered(rng, n, WIDTH, 0.015)
    y = clustered(rng, n + 2, WIDTH, 0.015)
    h = np.array([0.01, 0.03])
    results = [np.asarray(log_kernel_sums(y, x, h, block_size=b)) for b in (8, 64, 1024)]
    tol = tolerance(dtype, float32=2e-5, float64=1e-11)
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# Log-weights
# --------------------------------------------------------------------------------------------


@settings(max_examples=10)
@given(query_reference_sets(), st.data())
def test_log_weight_log2_equals_duplicated_reference(dtype, data, draw):
    """A reference with log-weight log 2 counts exactly like two copies of it."""
    y, x, h = data
    j = draw.draw(st.integers(0, len(x) - 1), label="doubled reference")
    log_weights = np.zeros(len(x))
    log_weights[j] = np.log(2.0)
    weighted = np.asarray(log_kernel_sums(y, x, h, log_weights=log_weights))
    duplicated = np.asarray(log_kernel_sums(y, np.concatenate([x, x[j : j + 1]]), h))
    tol = tolerance(dtype, float32=2e-5, float64=1e-11)
    np.testing.assert_allclose(weighted, duplicated, rtol=tol, atol=tol)


@settings(max_examples=10)
@given(query_reference_sets(min_n=2), st.data())
def test_log_weight_minus_inf_removes_reference(dtype, data, draw):
    """A reference with log-weight -inf contributes nothing: same as deleting its row."""
    y, x, h = data
    j = draw.draw(st.integers(0, len(x) - 1), label="removed reference")
    log_weights = np.zeros(len(x))
    log_weights[j] = -np.inf
    weighted = np.asarray(log_kernel_sums(y, x, h, log_weights=log_weights))
    removed = np.asarray(log_kernel_sums(y, np.delete(x, j, axis=0), h))
    tol = tolerance(dtype, float32=2e-5, float64=1e-11)
    np.testing.assert_allclose(weighted, removed, rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


def _small_problem(seed=0, m=3, n=11, d=WIDTH, h=0.015):
    rng = np.random.default_rng(seed)
    both = clustered(rng, m + n, d, h, n_clusters=2)
    return both[:m], both[m:], rng


@pytest.mark.float64_only
def test_gradient_wrt_log_weights_matches_finite_differences():
    """d/dw of a weighted sum of log-sums (scalar and 1-D h) equals central differences."""
    y, x, rng = _small_problem()
    coefficients = rng.normal(size=(len(y), 2))
    h = np.array([0.01, 0.03])
    log_weights = rng.normal(size=len(x))

    def loss(w):
        return jnp.sum(coefficients * log_kernel_sums(y, x, h, log_weights=w))

    grad = np.asarray(jax.grad(loss)(jnp.asarray(log_weights)))
    expected = central_difference(loss, log_weights, eps=1e-6)
    np.testing.assert_allclose(grad, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.float64_only
def test_gradients_wrt_queries_references_and_bandwidths_match_finite_differences():
    """The custom VJP gives the same y, x and h cotangents as central differences."""
    y, x, rng = _small_problem(seed=1)
    coefficients = rng.normal(size=(len(y), 2))
    h = np.array([0.012, 0.02])

    def loss(y_, x_, h_):
        return jnp.sum(coefficients * log_kernel_sums(y_, x_, h_))

    grad_y, grad_x, grad_h = jax.grad(loss, argnums=(0, 1, 2))(
        jnp.asarray(y), jnp.asarray(x), jnp.asarray(h)
    )
    np.testing.assert_allclose(
        grad_y, central_difference(lambda a: loss(a, x, h), y, 1e-7), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        grad_x, central_difference(lambda a: loss(y, a, h), x, 1e-7), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        grad_h, central_difference(lambda a: loss(y, x, a), h, 1e-8), rtol=1e-6, atol=1e-6
    )


# --------------------------------------------------------------------------------------------
# Memory and compilation
# --------------------------------------------------------------------------------------------


def _temp_bytes(fn, n):
    x = jax.ShapeDtypeStruct((n, 63), jnp.float32)
    analysis = jax.jit(fn).lower(x).compile().memory_analysis()
    if analysis is None:  # pragma: no cover - backends without memory statistics
        pytest.skip("compiled memory_analysis() is not available on this backend")
    return analysis.temp_size_in_bytes


@pytest.mark.parametrize(
    "which",
    [
        pytest.param(lambda x: jaxinfo.entropy(x, 0.015, block_size=128), id="forward"),
        pytest.param(jax.grad(lambda x: jaxinfo.entropy(x, 0.015, block_size=128)), id="backward"),
    ],
)
def test_temporary_memory_is_not_quadratic(which):
    """XLA's compiled temp buffers stay far below an N x N matrix and grow ~linearly in N.

    With N = 2048 and 8192 (float32, block 128) an N x N buffer would need 16 and 256 MiB; the
    blocked forward and the recomputing custom VJP need O(N d + block^2) bytes, so quadrupling N
    may at most ~quadruple the temporaries (quadratic growth would multiply them by 16).
    """
    small, large = 2048, 8192
    temp_small, temp_large = _temp_bytes(which, small), _temp_bytes(which, large)
    assert temp_small < small * small * 4 / 4, temp_small
    assert temp_large < large * large * 4 / 16, temp_large
    assert temp_large / temp_small < 6.0, (temp_small, temp_large)


def test_sizes_in_one_padding_bucket_compile_nothing_new():
    """After N = 1000, the estimators on N = 1010 (same bucket) compile no program at all: not
    the kernel and not a small eager op (validation and padding happen in numpy)."""
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.01, size=(1010, 63))
    assert padded_length(1000) == padded_length(1010)
    jaxinfo.entropy(x[:1000], 0.015)
    jaxinfo.dataset_metrics(x[:1000], 0.015)
    jaxinfo.delta_entropy(x[:3], x[:1000], 0.015)
    with count_compilations() as compiled:
        jaxinfo.entropy(x, 0.015)
        jaxinfo.diversity(x, 0.015)
        jaxinfo.dataset_metrics(x[:1005], 0.015)
        jaxinfo.delta_entropy(x[:5], x, 0.015)
        jaxinfo.overlap(x[:7], x[:1001], 0.015)
    assert compiled == []


def test_sizes_in_one_bucket_compile_nothing_new_on_a_mesh():
    """The same on a device mesh (the sharded program is compiled once per bucket)."""
    mesh = jaxinfo.data_mesh()
    x = np.random.default_rng(1).normal(scale=0.01, size=(300, 8))
    jaxinfo.entropy(x[:290], 0.015, mesh=mesh)
    with count_compilations() as compiled:
        jaxinfo.entropy(x, 0.015, mesh=mesh)
    assert compiled == []


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_log_weights_of_wrong_shape_are_rejected():
    """log_weights must have one entry per reference row."""
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"log_weights must have shape \(5,\)"):
        log_kernel_sums(x, x, 0.015, log_weights=np.zeros(4))
    with pytest.raises(ValueError, match="log_weights"):
        log_kernel_sums(x, x, 0.015, log_weights=np.zeros((5, 1)))


@pytest.mark.parametrize("block_size", [0, -8])
def test_block_size_below_one_is_rejected(block_size):
    """block_size < 1 raises a ValueError that names block_size."""
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="block_size"):
        log_kernel_sums(x, x, 0.015, block_size=block_size)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_plus_inf_log_weights_are_rejected(bad):
    """NaN or +inf log-weights raise; -inf is the documented way to drop a row."""
    x = np.zeros((4, 3))
    log_weights = np.zeros(4)
    log_weights[2] = bad
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        log_kernel_sums(x, x, 0.015, log_weights=log_weights)


def test_bandwidth_too_small_for_the_dtype_is_rejected(dtype):
    """h whose 1/(2 h^2) overflows the working dtype raises instead of returning NaN."""
    x = np.zeros((4, 3))
    tiny = 1e-20 if dtype == np.float32 else 1e-160
    with pytest.raises(ValueError, match="too small"):
        log_kernel_sums(x, x, tiny)


@pytest.mark.parametrize("bad", ["desc.xyz", None, [["a", "b"]], np.zeros((0, 3))])
def test_non_descriptor_inputs_are_rejected_clearly(bad):
    """Strings (a file name), None, non-numeric and empty arrays raise a ValueError."""
    with pytest.raises(ValueError, match=r"descriptor|empty"):
        jaxinfo.entropy(bad, 0.015)


def test_integer_descriptors_are_rejected():
    """Integer arrays are not descriptors (a common slip: an index array)."""
    with pytest.raises(ValueError, match="floating-point"):
        jaxinfo.entropy(np.arange(12).reshape(4, 3), 0.015)


def test_nan_descriptor_row_is_named():
    x = np.zeros((5, 3))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        jaxinfo.entropy(x, 0.015)


# --------------------------------------------------------------------------------------------
# float32 accuracy (the default precision) against float64
# --------------------------------------------------------------------------------------------


def _cu_like(seed=0, n=120, h=0.015):
    """Realistic Cu descriptors plus copies perturbed at the bandwidth's scale, so the sums
    mix exact self pairs, close pairs and far pairs."""
    from estimator_helpers import rattled_cu_descriptors

    base = rattled_cu_descriptors(n_structures=4, repeat=2)
    rng = np.random.default_rng(seed)
    base = base[rng.choice(len(base), n // 2, replace=False)]
    return np.concatenate([base, base + rng.normal(0.0, h / 8, base.shape)])


@pytest.mark.float32_only
@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("h", [1e-4, 1e-3, 0.015, 0.1, 1.0])
def test_float32_entropy_and_gradient_match_float64(h, offset):
    """float32 H within 1e-4 relative and its gradient within 1e-3 relative of float64, for h
    from 1e-4 to 1 and data offset from the origin by 1e3 (the expansion alone cancels there).

    Inputs are rounded to float32 first, so the comparison measures the kernel, not the
    representation of the inputs.
    """
    x = (_cu_like(h=h) + offset).astype(np.float32)

    def f(a):
        return jaxinfo.entropy(a, h)

    value32, grad32 = f(x), np.asarray(jax.grad(f)(jnp.asarray(x)))
    with jax.enable_x64(True):
        x64 = jnp.asarray(x, jnp.float64)
        value64, grad64 = float(f(np.asarray(x64))), np.asarray(jax.grad(f)(x64))
    assert abs(float(value32) - value64) <= 1e-4 * abs(value64)
    assert np.linalg.norm(grad32 - grad64) <= 1e-3 * np.linalg.norm(grad64)


def test_copied_subset_overlaps_exactly_one(dtype):
    """overlap(Y, X) = 1 for Y a copy of rows of X (not the same object), at any h: equal
    rows have distance exactly 0 in both precisions."""
    x = _cu_like()
    y = np.array(x[::3], copy=True)
    for h in (1e-3, 0.015):
        assert float(jaxinfo.overlap(y, x, h)) == 1.0
    dh = jaxinfo.delta_entropy(y, x, 1e-4)
    assert np.all(dh <= 0.0)


def test_entropy_bounds_hold_for_tiny_bandwidths(dtype):
    """0 <= H <= D <= log N even when h is far below the spacing of the data."""
    x = _cu_like(n=100)
    log_n = np.log(len(x))
    for h in (1e-6, 1e-5, 1e-3, 0.015, 10.0):
        metrics = jaxinfo.dataset_metrics(x, h)
        slack = tolerance(dtype, float32=1e-5, float64=1e-12) * log_n
        assert -slack <= float(metrics.entropy) <= float(metrics.diversity) + slack
        assert float(metrics.diversity) <= log_n + slack


# --------------------------------------------------------------------------------------------
# Automatic differentiation edge cases
# --------------------------------------------------------------------------------------------


def test_all_minus_inf_weights_give_zero_gradient_not_nan():
    """A query whose every reference has weight 0 gets log-sum -inf and a zero gradient."""
    x = np.random.default_rng(0).normal(scale=0.01, size=(6, 3))

    def f(y):
        out = log_kernel_sums(y, x, 0.015, log_weights=np.full(6, -np.inf))
        return jnp.sum(jnp.where(jnp.isfinite(out), out, 0.0))

    grad = np.asarray(jax.grad(f)(jnp.asarray(x[:2])))
    assert np.all(grad == 0.0)


def test_forward_mode_raises_a_clear_error():
    """jax.jacfwd / jax.jvp are not supported (custom VJP) and say so; jacrev works."""
    x = jnp.asarray(np.random.default_rng(0).normal(scale=0.01, size=(5, 3)))

    def f(a):
        return jaxinfo.entropy(a, 0.015)

    with pytest.raises(TypeError, match=r"custom_vjp|forward-mode|jvp"):
        jax.jacfwd(f)(x)
    assert np.all(np.isfinite(np.asarray(jax.jacrev(f)(x))))


# --------------------------------------------------------------------------------------------
# Prepared references
# --------------------------------------------------------------------------------------------


def test_prepared_reference_gives_the_same_values(dtype):
    rng = np.random.default_rng(3)
    x = clustered(rng, 70, WIDTH, 0.015)
    y = clustered(rng, 9, WIDTH, 0.015)
    prepared = prepare_reference(x)
    assert prepared.shape == (70, WIDTH)
    assert prepared.dtype == dtype
    np.testing.assert_array_equal(log_kernel_sums(y, prepared, 0.015), log_kernel_sums(y, x, 0.015))
    np.testing.assert_allclose(
        jaxinfo.delta_entropy(y, prepared, 0.015),
        jaxinfo.delta_entropy(y, x, 0.015),
        rtol=0,
        atol=0,
    )


def test_prepared_reference_rejects_log_weights_at_call_time():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="prepare_reference"):
        log_kernel_sums(x, prepare_reference(x), 0.015, log_weights=np.zeros(4))
