"""Test configuration: float64 JAX, a quiet hypothesis profile and shared fixtures.

Structure builders, brute-force references and strategies live in ``tests/helpers.py``.
"""

import jax

# Parity with the peer package is checked at 1e-9, which needs float64. Tests of the float32
# path pass ``dtype=jnp.float32`` explicitly (or disable x64 locally with jax.enable_x64(False)).
jax.config.update("jax_enable_x64", True)

import pytest  # noqa: E402
from helpers import load_reference  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# No deadline: the first example of a test pays for XLA compilation, and shared CI cores make
# timings noisy. Example counts are set per test and kept small (each example may compile).
settings.register_profile(
    "jaxinfo",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("jaxinfo")


@pytest.fixture(scope="session")
def reference():
    """The peer's reference values (shared/reference/quests_reference.json)."""
    data = load_reference()
    if data is None:
        pytest.skip("shared/reference/quests_reference.json not found (set JAXINFO_REFERENCE)")
    return data


@pytest.fixture(scope="session")
def peer_get_descriptors():
    """``quests.descriptor.get_descriptors`` of the installed peer package (skip if absent)."""
    pytest.importorskip("quests")
    from quests.descriptor import get_descriptors

    return get_descriptors
