"""Several processes with jax.distributed (CPU, gloo collectives) give one process's entropy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxinfo

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "distributed_entropy.py"


def run_launcher(tmp_path, *extra):
    out = tmp_path / "result.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--launch",
            "2",
            "--n-env",
            "1500",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.float32_only
def test_two_processes_give_the_entropy_of_one(tmp_path):
    summary = run_launcher(tmp_path)
    workers, single = summary["processes"], summary["single"]
    assert sorted(w["process_index"] for w in workers) == [0, 1]
    assert all(w["process_count"] == 2 for w in workers)
    assert single["n_queries"] == single["n_total"] == 1500 and single["stderr"] == 0.0
    for w in workers:
        assert w["n_queries"] == 1500 and w["stderr"] == 0.0
        np.testing.assert_allclose(w["entropy"], single["entropy"], rtol=0, atol=2e-5)
        # The exact estimator with mesh= over both processes' devices.
        assert w["mesh_devices"] == 2
        np.testing.assert_allclose(w["mesh_entropy"], single["entropy"], rtol=0, atol=2e-5)


@pytest.mark.float32_only
def test_two_processes_sample_the_same_queries_from_a_file(tmp_path):
    x = np.random.default_rng(0).normal(scale=0.004, size=(1200, 16))
    np.save(tmp_path / "x.npy", x)
    extra = ["--data", str(tmp_path / "x.npy"), "--n-queries", "301", "--control-rows", "100"]
    summary = run_launcher(tmp_path, *extra)
    in_process = jaxinfo.estimate_entropy(x, h=0.015, n_queries=301, seed=0, control_rows=100)
    for w in [*summary["processes"], summary["single"]]:
        assert w["n_queries"] == 301 and w["n_total"] == 1200
        np.testing.assert_allclose(w["entropy"], in_process.value, rtol=0, atol=2e-5)
        np.testing.assert_allclose(w["stderr"], in_process.stderr, rtol=1e-3)
