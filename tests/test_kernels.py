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
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxinfo
from jaxinfo import kernels
from jaxinfo.kernels import log_kernel_sums, padded_length

# conftest.py enables float64 for the whole session; this module relies on it.


# --------------------------------------------------------------------------------------------
# Values against a dense numpy reference
# --------------------------------------------------------------------------------------------


@settings(max_examples=12)
@given(query_reference_sets())
def test_log_kernel_sums_match_dense_reference(data):
    """Blocked sums equal log sum_j exp(-|y - x_j|^2 / 2h^2) from the full matrix (float64)."""
    y, x, h = data
    actual = np.asarray(log_kernel_sums(y, x, h))
    assert actual.shape == (len(y),)
    np.testing.assert_allclose(actual, dense_log_kernel_sums(y, x, h), rtol=1e-10, atol=1e-10)


@settings(max_examples=10)
@given(query_reference_sets(), st.integers(0, 2**32 - 1))
def test_weighted_multi_bandwidth_sums_match_dense_reference(data, seed):
    """With log-weights and a 1-D h the result is (M, n_h) and equals the dense reference."""
    y, x, _ = data
    rng = np.random.default_rng(seed)
    log_weights = rng.normal(size=len(x))
    h = np.array(BANDWIDTHS)
    actual = np.asarray(log_kernel_sums(y, x, h, log_weights=log_weights))
    assert actual.shape == (len(y), len(h))
    expected = dense_log_kernel_sums(y, x, h, log_weights)
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10)


def test_far_outlier_sum_is_finite_and_exact():
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
    assert value == pytest.approx(np.log(3.0) - 1.0 / (2.0 * h**2), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_result_dtype_follows_input(dtype):
    """float32 descriptors give float32 sums, float64 ones float64 (also for 1-D h)."""
    x = np.random.default_rng(0).normal(scale=0.01, size=(20, 4)).astype(dtype)
    assert log_kernel_sums(x, x, 0.015).dtype == dtype
    assert log_kernel_sums(x, x, np.array([0.01, 0.02])).dtype == dtype


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
def test_block_size_does_not_change_results(n, seed):
    """block_size 8, 64 and 1024 give the same sums (n not a multiple of any block)."""
    rng = np.random.default_rng(seed)
    x = clustered(rng, n, WIDTH, 0.015)
    y = clustered(rng, n + 2, WIDTH, 0.015)
    h = np.array([0.01, 0.03])
    results = [np.asarray(log_kernel_sums(y, x, h, block_size=b)) for b in (8, 64, 1024)]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Log-weights
# --------------------------------------------------------------------------------------------


@settings(max_examples=10)
@given(query_reference_sets(), st.data())
def test_log_weight_log2_equals_duplicated_reference(data, draw):
    """A reference with log-weight log 2 counts exactly like two copies of it."""
    y, x, h = data
    j = draw.draw(st.integers(0, len(x) - 1), label="doubled reference")
    log_weights = np.zeros(len(x))
    log_weights[j] = np.log(2.0)
    weighted = np.asarray(log_kernel_sums(y, x, h, log_weights=log_weights))
    duplicated = np.asarray(log_kernel_sums(y, np.concatenate([x, x[j : j + 1]]), h))
    np.testing.assert_allclose(weighted, duplicated, rtol=1e-12, atol=1e-12)


@settings(max_examples=10)
@given(query_reference_sets(min_n=2), st.data())
def test_log_weight_minus_inf_removes_reference(data, draw):
    """A reference with log-weight -inf contributes nothing: same as deleting its row."""
    y, x, h = data
    j = draw.draw(st.integers(0, len(x) - 1), label="removed reference")
    log_weights = np.zeros(len(x))
    log_weights[j] = -np.inf
    weighted = np.asarray(log_kernel_sums(y, x, h, log_weights=log_weights))
    removed = np.asarray(log_kernel_sums(y, np.delete(x, j, axis=0), h))
    np.testing.assert_allclose(weighted, removed, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


def _small_problem(seed=0, m=3, n=11, d=WIDTH, h=0.015):
    rng = np.random.default_rng(seed)
    both = clustered(rng, m + n, d, h, n_clusters=2)
    return both[:m], both[m:], rng


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


def test_sizes_in_one_padding_bucket_share_a_compilation():
    """entropy on N = 1000 and then N = 1010 (same padded bucket) does not recompile."""
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.01, size=(1010, 63)).astype(np.float32)
    assert padded_length(1000) == padded_length(1010)
    jaxinfo.entropy(x[:1000], 0.015).block_until_ready()
    before = kernels._log_kernel_sums_jit._cache_size()
    jaxinfo.entropy(x, 0.015).block_until_ready()
    assert kernels._log_kernel_sums_jit._cache_size() == before


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
