"""``jaxinfo entropy --sample N`` / ``--stderr SE``: sampled H with its standard error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jaxinfo
from jaxinfo import io as jio


def run(args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu", COLUMNS="100")
    env.pop("JAX_ENABLE_X64", None)
    argv = [sys.executable, "-m", "jaxinfo.cli", *map(str, args)]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.float32_only
def test_sampled_entropy_prints_value_and_stderr(tmp_path):
    x = np.random.default_rng(0).normal(scale=0.004, size=(600, 63)).astype(np.float32)
    jio.save_descriptors(tmp_path / "x.npz", x, k=32, cutoff=5.0)
    out = tmp_path / "h.json"
    result = run(["entropy", tmp_path / "x.npz", "--sample", "150", "-o", out], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "±" in result.stdout and "150" in result.stdout
    record = json.loads(out.read_text())
    expected = jaxinfo.estimate_entropy(x, 0.015, n_queries=150, seed=0)
    assert record["n_queries"] == 150 and record["n_env"] == 600
    np.testing.assert_allclose(record["entropy"], expected.value, atol=1e-5)
    np.testing.assert_allclose(record["entropy_stderr"], expected.stderr, rtol=1e-4)
    # A target only reachable with every environment gives the exact value, stderr 0.
    out = tmp_path / "exact.json"
    result = run(["entropy", tmp_path / "x.npz", "--stderr", "1e-9", "-o", out], tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["n_queries"] == 600 and record["entropy_stderr"] == 0.0
    np.testing.assert_allclose(record["entropy"], jaxinfo.entropy(x, 0.015), atol=2e-5)
    bad = run(["entropy", tmp_path / "x.npz", "--stderr", "0"], tmp_path)
    assert bad.returncode == 2 and "must be > 0" in bad.stderr
