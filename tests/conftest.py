"""Test configuration: every test in both precisions, a quiet hypothesis profile, fixtures.

Users run jaxinfo in float32 (JAX's default) or with x64 enabled, so each test runs twice:
``[float32]`` with JAX x64 disabled and ``[float64]`` with it enabled (``jax.enable_x64`` around
the test). Tolerances follow the run's precision through the ``dtype`` fixture and
:func:`helpers.tolerance`. Two markers narrow a test to one precision:

* ``float64_only``: parity with the peer or with a numpy reference at ~1e-9, which float32
  cannot carry (the float32 path is compared against float64 in other tests);
* ``float32_only``: the test itself compares the float32 path against float64 inputs.

Structure builders, brute-force references and strategies live in ``tests/helpers.py``.
"""

import jax
import jax.numpy as jnp
import pytest
from helpers import load_reference
from hypothesis import HealthCheck, settings

PRECISIONS = ("float32", "float64")

# No deadline: the first example of a test pays for XLA compilation, and shared CI cores make
# timings noisy. Example counts are set per test and kept small (each example may compile).
# The only function-scoped fixture used with @given is the precision switch, which is the same
# for every example of a test.
settings.register_profile(
    "jaxinfo",
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.load_profile("jaxinfo")


def pytest_generate_tests(metafunc):
    if "precision" not in metafunc.fixturenames:
        return
    precisions = PRECISIONS
    if metafunc.definition.get_closest_marker("float64_only"):
        precisions = ("float64",)
    elif metafunc.definition.get_closest_marker("float32_only"):
        precisions = ("float32",)
    metafunc.parametrize("precision", precisions, indirect=True, scope="function")


@pytest.fixture(autouse=True)
def precision(request):
    """``"float32"`` or ``"float64"``: the test body runs with JAX x64 off or on."""
    with jax.enable_x64(request.param == "float64"):
        yield request.param


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Each test module ends by emptying JAX's caches. One pytest process compiles thousands of
    programs, and every XLA:CPU executable keeps memory maps of its code; the whole suite in
    one process crashed inside XLA compilation near the end (a process may hold at most
    65,530 maps by default)."""
    yield
    jax.clear_caches()


@pytest.fixture
def dtype(precision):
    """The floating dtype results have in this run: jnp.float32 or jnp.float64."""
    return jnp.float64 if precision == "float64" else jnp.float32


@pytest.fixture(scope="session")
def reference():
    """The peer's reference values (tests/data/quests_reference.json, from quests 2026.2.22)."""
    data = load_reference()
    if data is None:
        pytest.fail("tests/data/quests_reference.json is missing")
    return data


@pytest.fixture(scope="session")
def peer_get_descriptors():
    """``quests.descriptor.get_descriptors`` of the installed peer package (skip if absent)."""
    pytest.importorskip("quests")
    from quests.descriptor import get_descriptors

    return get_descriptors
