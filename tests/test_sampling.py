"""Sampled entropy/diversity with standard errors, and references read from files block by block."""

import numpy as np
import pytest
from helpers import tolerance

import jaxinfo
from jaxinfo.sampling import _Sampler


def clustered(n, d=8, seed=0):
    """Descriptor-like data whose log-densities spread over several nats (clusters of
    different widths), so that the sampling variance is not trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.05, size=(6, d))
    widths = np.array([0.002, 0.004, 0.008, 0.012, 0.02, 0.03])
    label = rng.integers(0, 6, n)
    return centres[label] + rng.normal(size=(n, d)) * widths[label, None]


@pytest.fixture(scope="module")
def data():
    return clustered(1500)


def test_all_queries_give_the_exact_values(data, dtype):
    tol = tolerance(dtype, float32=2e-5, float64=1e-10)
    n = data.shape[0]
    est = jaxinfo.estimate_entropy(data, h=0.015, n_queries=n, seed=3)
    assert est.n_queries == n == est.n_total and est.exact
    assert float(est.stderr) == 0.0
    assert est.value.dtype == dtype
    np.testing.assert_allclose(est.value, jaxinfo.entropy(data, h=0.015), rtol=0, atol=tol)
    div = jaxinfo.estimate_diversity(data, h=0.015, n_queries=10 * n)
    assert div.exact and float(div.stderr) == 0.0
    np.testing.assert_allclose(div.value, jaxinfo.diversity(data, h=0.015), rtol=0, atol=tol)
    # With a control variate the exact value is recovered too (its terms cancel).
    for estimate, exact in [
        (jaxinfo.estimate_entropy, jaxinfo.entropy),
        (jaxinfo.estimate_diversity, jaxinfo.diversity),
    ]:
        est = estimate(data, h=0.015, n_queries=n, control_rows=200)
        assert est.exact and est.n_control == 200 and float(est.stderr) == 0.0
        np.testing.assert_allclose(est.value, exact(data, h=0.015), rtol=0, atol=tol)


@pytest.mark.float32_only
def test_control_variate_reduces_the_standard_error(data):
    plain = jaxinfo.estimate_entropy(data, n_queries=200, seed=1, control_rows=0)
    controlled = jaxinfo.estimate_entropy(data, n_queries=200, seed=1, control_rows=300)
    assert float(controlled.stderr) < 0.5 * float(plain.stderr)


@pytest.mark.parametrize("control_rows", [0, 200])
def test_several_bandwidths_match_one_at_a_time(data, dtype, control_rows):
    tol = tolerance(dtype, float32=2e-5, float64=1e-10)
    kwargs = {"n_queries": 200, "seed": 5, "control_rows": control_rows}
    both = jaxinfo.estimate_entropy(data, h=np.array([0.01, 0.02]), **kwargs)
    assert both.value.shape == both.stderr.shape == (2,)
    for i, h in enumerate([0.01, 0.02]):
        one = jaxinfo.estimate_entropy(data, h=h, **kwargs)
        np.testing.assert_allclose(both.value[i], one.value, atol=tol)
        np.testing.assert_allclose(both.stderr[i], one.stderr, rtol=1e-3)


@pytest.mark.float32_only
@pytest.mark.parametrize("control_rows", [0, 128])
def test_error_is_within_three_standard_errors_for_95_percent_of_seeds(data, control_rows):
    exact_h = float(jaxinfo.entropy(data, h=0.015))
    exact_d = float(jaxinfo.diversity(data, h=0.015))
    inside_h = inside_d = 0
    seeds = range(40)
    kwargs = {"h": 0.015, "n_queries": 200, "control_rows": control_rows}
    for seed in seeds:
        est = jaxinfo.estimate_entropy(data, seed=seed, **kwargs)
        assert 0 < float(est.stderr) < 0.5 and est.n_control == control_rows
        inside_h += abs(float(est.value) - exact_h) <= 3 * float(est.stderr)
        div = jaxinfo.estimate_diversity(data, seed=seed, **kwargs)
        inside_d += abs(float(div.value) - exact_d) <= 3 * float(div.stderr)
    assert inside_h >= 0.95 * len(seeds), inside_h
    assert inside_d >= 0.95 * len(seeds), inside_d


def test_the_standard_error_matches_the_spread_over_seeds(data):
    """Repeated estimates scatter by about their stated standard error (n = 300 of 1500)."""
    values, errors = [], []
    for seed in range(12):
        est = jaxinfo.estimate_entropy(data, h=0.015, n_queries=300, seed=100 + seed)
        values.append(float(est.value))
        errors.append(float(est.stderr))
    ratio = np.std(values, ddof=1) / np.mean(errors)
    assert 0.5 < ratio < 1.6, ratio


def test_same_seed_same_rows_and_value(data):
    a = jaxinfo.estimate_entropy(data, h=0.015, n_queries=64, seed=11)
    b = jaxinfo.estimate_entropy(data, h=0.015, n_queries=64, seed=11)
    c = jaxinfo.estimate_entropy(data, h=0.015, n_queries=64, seed=12)
    assert a == b
    assert a.value != c.value


def test_adaptive_stops_at_the_target(data):
    target = 0.03
    est = jaxinfo.estimate_entropy(data, h=0.015, n_queries=32, seed=2, target_stderr=target)
    assert float(est.stderr) <= target
    assert 32 < est.n_queries < data.shape[0]
    # A target that only all rows reach gives the exact value.
    exact = jaxinfo.estimate_entropy(data, h=0.015, n_queries=32, target_stderr=1e-9)
    assert exact.exact and float(exact.stderr) == 0.0
    capped = jaxinfo.estimate_diversity(
        data, h=0.015, n_queries=32, target_stderr=1e-9, max_queries=100
    )
    assert capped.n_queries == 100 and float(capped.stderr) > 0


def test_sampler_draws_without_replacement():
    sampler = _Sampler(1000, np.random.default_rng(0))
    drawn = np.concatenate([sampler.draw(k) for k in (10, 100, 300, 700)])
    assert drawn.size == 1000
    assert np.array_equal(np.sort(drawn), np.arange(1000))
    assert sampler.draw(5).size == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_queries": 0}, "n_queries must be >= 1"),
        ({"n_queries": 2.5}, "n_queries must be an integer"),
        ({"target_stderr": 0.0}, "target_stderr must be a finite number > 0"),
        ({"target_stderr": -1.0}, "target_stderr must be a finite number > 0"),
        ({"target_stderr": float("nan")}, "target_stderr must be a finite number > 0"),
        ({"target_stderr": "a"}, "target_stderr must be a number"),
        ({"max_queries": 0}, "max_queries must be >= 1"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"control_rows": -1}, "control_rows must be >= 0"),
        ({"control_rows": "some"}, "control_rows must be 'auto' or an integer"),
        ({"h": -1.0}, "bandwidth h must be finite and > 0"),
    ],
)
def test_bad_arguments_are_rejected(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        jaxinfo.estimate_entropy(data, **kwargs)


def test_bad_descriptors_are_rejected(data):
    bad = data.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"contains NaN or inf \(row 7\)"):
        jaxinfo.estimate_entropy(bad)
    with pytest.raises(ValueError, match="2-D array"):
        jaxinfo.estimate_diversity(data[0])


# --------------------------------------------------------------------------------------------
# Files read block by block


@pytest.fixture
def files(tmp_path, data):
    """The data split over a .npy, a stored .npz entry and a compressed .npz entry."""
    a, b, c = data[:500], data[500:1100], data[1100:]
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "b.npz", other=np.zeros((2, 2)), x=b)
    np.savez_compressed(tmp_path / "c.npz", c)
    return [tmp_path / "a.npy", f"{tmp_path / 'b.npz'}:x", tmp_path / "c.npz"]


def test_source_reads_every_format_block_by_block(files, data):
    source = jaxinfo.open_source(files)
    assert source.shape == data.shape
    assert isinstance(source.parts[0], np.memmap) and isinstance(source.parts[1], np.memmap)
    blocks = [(start, rows.copy()) for start, rows in source.blocks(256)]
    assert max(rows.shape[0] for _, rows in blocks) == 256
    np.testing.assert_array_equal(np.concatenate([rows for _, rows in blocks]), data)
    assert [start for start, _ in blocks][:3] == [0, 256, 500]
    assert len(blocks) == source.n_blocks(256)
    pick = np.array([1499, 3, 1200, 700, 0, 1100])
    np.testing.assert_array_equal(source.take(pick, block_rows=128), data[pick])


def test_streamed_delta_entropy_equals_in_memory(files, data, dtype):
    tol = tolerance(dtype, float32=2e-5, float64=1e-10)
    y = clustered(40, seed=9)
    expected = jaxinfo.delta_entropy(y, data, h=np.array([0.01, 0.015]))
    streamed = jaxinfo.delta_entropy_streamed(y, files, h=np.array([0.01, 0.015]), block_rows=256)
    assert streamed.shape == (40, 2) and streamed.dtype == dtype
    np.testing.assert_allclose(streamed, expected, rtol=0, atol=tol)


def test_sampled_entropy_from_files_equals_in_memory(files, data, dtype):
    tol = tolerance(dtype, float32=2e-5, float64=1e-10)
    cases = [{"n_queries": 200, "seed": 4}, {"n_queries": 150, "control_rows": 100}]
    for kwargs in [*cases, {"n_queries": 5000}]:
        on_disk = jaxinfo.estimate_entropy(files, h=0.015, block_rows=512, **kwargs)
        in_memory = jaxinfo.estimate_entropy(data, h=0.015, **kwargs)
        assert on_disk.n_queries == in_memory.n_queries
        np.testing.assert_allclose(on_disk.value, in_memory.value, atol=tol)
        np.testing.assert_allclose(on_disk.stderr, in_memory.stderr, rtol=1e-3, atol=tol)
    np.testing.assert_allclose(on_disk.value, jaxinfo.entropy(data, h=0.015), atol=tol)


def test_bad_sources_are_rejected(tmp_path, data):
    with pytest.raises(ValueError, match="not found"):
        jaxinfo.open_source(tmp_path / "missing.npy")
    np.savez(tmp_path / "two.npz", a=data, b=data)
    with pytest.raises(ValueError, match="holds 2 arrays"):
        jaxinfo.open_source(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="no array 'c'"):
        jaxinfo.open_source(f"{tmp_path / 'two.npz'}:c")
    np.save(tmp_path / "narrow.npy", data[:, :3])
    with pytest.raises(ValueError, match="different widths"):
        jaxinfo.open_source([tmp_path / "two.npz:a", tmp_path / "narrow.npy"])
    bad = data.copy()
    bad[1234] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=r"NaN or inf \(row 1234\)"):
        jaxinfo.delta_entropy_streamed(data[:3], tmp_path / "bad.npy", block_rows=1000)
    with pytest.raises(ValueError, match="block_rows must be >= 1"):
        jaxinfo.delta_entropy_streamed(data[:3], data, block_rows=0)
    with pytest.raises(ValueError, match="widths differ"):
        jaxinfo.delta_entropy_streamed(data[:3, :4], data)
