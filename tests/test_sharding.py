"""Multi-device kernel sums (shard_map over queries) against the single-device results.

Several CPU devices can only be simulated when ``XLA_FLAGS=--xla_force_host_platform_device_count``
is set before JAX initialises its backend, which has already happened in a normal test session.
So the checks that need several devices skip themselves when ``jax.device_count() < 2``, and
``test_in_subprocess_with_four_cpu_devices`` re-runs exactly those checks in a fresh pytest
process with four simulated CPU devices and reports each of them (on a machine that already has
several devices they also run directly).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from estimator_helpers import rattled_cu_descriptors, relative_error
from helpers import count_compilations
from jax.sharding import Mesh

import jaxinfo

multi_device = pytest.mark.skipif(
    jax.device_count() < 2,
    reason=(
        "needs >= 2 JAX devices (on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=4 "
        "before JAX starts); test_in_subprocess_with_four_cpu_devices runs these checks"
    ),
)

#: Sharded results are compared with single-device ones (norm-relative). Each device shifts its
#: own query blocks by their mean, and its blocks start at other rows than one device's, so the
#: round-off differs: measured 4e-6 for float32 query gradients on the data below, ~1e-7 for
#: values. Asserted: 1e-5 in float32 plus a check that sharding costs no accuracy against the
#: float64 result; float64 agrees to 1e-12 throughout.
SCALAR_TOL = {np.float32: 1e-5, np.float64: 1e-12}
ARRAY_TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(scope="module")
def copper():
    """float64 descriptors of 216 rattled/thermal Cu environments and 201 queries (not / 4)."""
    x = rattled_cu_descriptors(n_structures=2, repeat=3, seed=1)
    y = rattled_cu_descriptors(n_structures=2, repeat=3, seed=2)[:201]
    return x, y


def _assert_close(actual, expected, tol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    error = relative_error(actual, expected)
    assert error <= tol, f"{what}: relative error {error:.3g} > {tol:g}"


def _assert_sharded_close(sharded, single, exact, dtype, what):
    """Sharded vs single-device (norm-relative), and for float32 arrays no loss of accuracy."""
    scalar = np.ndim(single) == 0
    _assert_close(sharded, single, (SCALAR_TOL if scalar else ARRAY_TOL)[dtype], what)
    if dtype == np.float32 and not scalar:
        single_error = relative_error(single, exact)
        sharded_error = relative_error(sharded, exact)
        assert sharded_error <= 1.5 * single_error + 1e-7, (what, sharded_error, single_error)


# --------------------------------------------------------------------------------------------
# Always: mesh construction and a one-device mesh through the shard_map path
# --------------------------------------------------------------------------------------------


def test_data_mesh_spans_devices_along_data_axis():
    """data_mesh() is a 1-D mesh named "data" over all devices (or the given ones)."""
    mesh = jaxinfo.data_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.shape["data"] == jax.device_count()
    assert jaxinfo.data_mesh(jax.devices()[:1]).shape["data"] == 1


def test_data_mesh_rejects_an_empty_device_list():
    """An empty device list raises ValueError."""
    with pytest.raises(ValueError, match="no devices"):
        jaxinfo.data_mesh([])


def test_mesh_without_data_axis_is_rejected():
    """A mesh whose axis is not called "data" raises a ValueError naming the axis."""
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="'data'"):
        jaxinfo.entropy(x, 0.015, mesh=mesh)


def test_one_device_mesh_matches_unsharded():
    """Through shard_map on a one-device mesh: same H and dH as without a mesh."""
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.01, size=(24, 6))
    y = rng.normal(scale=0.01, size=(11, 6))
    mesh = jaxinfo.data_mesh(jax.devices()[:1])
    _assert_close(jaxinfo.entropy(x, 0.015, mesh=mesh), jaxinfo.entropy(x, 0.015), 1e-14, "H")
    _assert_close(
        jaxinfo.delta_entropy(y, x, 0.015, mesh=mesh),
        jaxinfo.delta_entropy(y, x, 0.015),
        1e-14,
        "dH",
    )


# --------------------------------------------------------------------------------------------
# Several devices
# --------------------------------------------------------------------------------------------


def _in_float64(fn, *args):
    with jax.enable_x64(True):
        return jax.tree.map(np.asarray, fn(*args))


@multi_device
def test_sharded_values_match_single_device(copper, dtype):
    """H, D and multi-bandwidth dH (M not divisible by the device count) match."""
    x64, y64 = copper
    x, y = x64.astype(dtype), y64.astype(dtype)
    assert len(y) % jax.device_count() != 0
    mesh = jaxinfo.data_mesh()
    hs = np.array([0.01, 0.015, 0.05])
    cases = {
        "entropy": lambda a, b, **kw: jaxinfo.entropy(a, 0.015, **kw),
        "diversity": lambda a, b, **kw: jaxinfo.diversity(a, 0.015, **kw),
        "delta_entropy multi-h": lambda a, b, **kw: jaxinfo.delta_entropy(b, a, hs, **kw),
    }
    for what, fn in cases.items():
        sharded, single = fn(x, y, mesh=mesh), fn(x, y)
        assert sharded.dtype == single.dtype == dtype, what
        exact = _in_float64(fn, x64, y64) if dtype == np.float32 else single
        _assert_sharded_close(sharded, single, exact, dtype, what)


@multi_device
def test_sharded_gradients_match_single_device(copper, dtype):
    """Gradients of H(X) + mean dH(Y | X) w.r.t. the queries Y and the references X match.

    The X gradient collects both the query and the reference side of the self-sums of H.
    """
    x64, y64 = copper
    x, y = x64.astype(dtype), y64.astype(dtype)
    mesh = jaxinfo.data_mesh()

    def gradients(y_, x_, mesh_):
        def loss(b, a):
            dh = jaxinfo.delta_entropy(b, a, 0.015, mesh=mesh_)
            return jaxinfo.entropy(a, 0.015, mesh=mesh_) + jnp.mean(dh)

        grad_y, grad_x = jax.grad(loss, argnums=(0, 1))(y_, x_)
        return {"d/dY": grad_y, "d/dX": grad_x}

    sharded, single = gradients(y, x, mesh), gradients(y, x, None)
    exact = _in_float64(gradients, y64, x64, None) if dtype == np.float32 else single
    for what in single:
        assert sharded[what].dtype == dtype
        _assert_sharded_close(sharded[what], single[what], exact[what], dtype, what)


@multi_device
def test_repeated_sharded_call_does_not_recompile(copper, dtype):
    """A second sharded entropy call, with the same or another N in the bucket, compiles nothing.

    Fails while every sharded call wraps a fresh closure in ``jax.shard_map`` and runs it
    eagerly: JAX then traces and compiles the whole kernel again on each call (~1.5 s here).
    """
    x = copper[0].astype(dtype)
    mesh = jaxinfo.data_mesh()
    jaxinfo.entropy(x, 0.015, mesh=mesh)
    with count_compilations() as compiled:
        jaxinfo.entropy(x, 0.015, mesh=mesh)
        jaxinfo.entropy(x[:-3], 0.015, mesh=mesh)  # another N in the same bucket
    assert not compiled, f"{compiled} compiled on a repeated sharded call"


# --------------------------------------------------------------------------------------------
# The multi-device checks in a subprocess with simulated CPU devices
# --------------------------------------------------------------------------------------------

MULTI_DEVICE_TESTS = [
    "test_sharded_values_match_single_device[float32]",
    "test_sharded_values_match_single_device[float64]",
    "test_sharded_gradients_match_single_device[float32]",
    "test_sharded_gradients_match_single_device[float64]",
    "test_repeated_sharded_call_does_not_recompile[float32]",
    "test_repeated_sharded_call_does_not_recompile[float64]",
]


_SUBPROCESS_FLAG = "JAXINFO_TEST_SHARDING_SUBPROCESS"


@pytest.fixture(scope="module")
def subprocess_outcomes():
    """Runs this module's multi-device tests under pytest with 4 simulated CPU devices."""
    if os.environ.get(_SUBPROCESS_FLAG):
        pytest.skip("already inside the multi-device subprocess")  # never recurse
    env = dict(os.environ)
    env[_SUBPROCESS_FLAG] = "1"
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(Path(__file__).resolve()),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        "--show-capture=no",
        "-k",
        "not in_subprocess and ("
        + " or ".join(sorted({name.split("[")[0] for name in MULTI_DEVICE_TESTS}))
        + ")",
    ]
    result = subprocess.run(
        command,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    outcomes = {
        name: status
        for status, name in re.findall(
            r"^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\S* \S*::(\S+)", output, re.M
        )
    }
    return outcomes, output


@pytest.mark.slow
@pytest.mark.parametrize("name", MULTI_DEVICE_TESTS)
def test_in_subprocess_with_four_cpu_devices(subprocess_outcomes, name):
    """The multi-device check ``name`` passes with 4 simulated CPU devices (float32 and float64)."""
    outcomes, output = subprocess_outcomes
    status = outcomes.get(name)
    if status != "PASSED":
        # The failure report of this test only (pytest prints "___ name ___" headers).
        start = output.find(f" {name} _")
        report = output[start : start + 6000] if start >= 0 else output[-6000:]
        pytest.fail(f"{name} in a 4-device subprocess: {status}\n{report}")
