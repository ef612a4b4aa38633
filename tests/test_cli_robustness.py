"""The command line under fire (issue 13): interrupts, bad input, partial files, closed pipes.

Each case runs the installed ``jaxinfo`` console script (or ``python -m jaxinfo``) in a
subprocess, with signals sent by the test, and asserts the exit status, a one-line message, and
that no partial or overwritten file is left. Bounds 0 <= H <= D <= log N are checked over the
bandwidth range the command line accepts, in both precisions. No test writes to the real
per-user compilation cache: the processes get a temporary ``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxinfo
from jaxinfo import io as jio
from jaxinfo.cli._app import MAX_BANDWIDTH, MIN_BANDWIDTH
from jaxinfo.datasets import example_path, load_example

EXAMPLE = str(example_path())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment of the CLI processes: a temporary per-user cache, CPU, no x64 switch."""
    cache = tmp_path_factory.mktemp("xdg_cache")
    environment = dict(os.environ)
    environment.pop("JAX_ENABLE_X64", None)
    environment.pop("JAXINFO_NO_CACHE", None)
    environment.pop("JAX_COMPILATION_CACHE_DIR", None)
    environment.update(XDG_CACHE_HOME=str(cache), JAX_PLATFORMS="cpu")
    return environment


@pytest.fixture(autouse=True)
def _no_cache_in_process(monkeypatch):
    """main() called in this process must not switch on a cache in the home directory."""
    monkeypatch.setenv("JAXINFO_NO_CACHE", "1")


def command() -> list[str]:
    """The installed console script, or ``python -m jaxinfo`` beside this interpreter."""
    beside_python = str(Path(sys.executable).parent)
    script = shutil.which("jaxinfo", path=beside_python) or shutil.which("jaxinfo")
    return [script] if script else [sys.executable, "-m", "jaxinfo"]


def run(args, cwd, env, **kwargs):
    return subprocess.run(
        [*command(), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        **kwargs,
    )


def assert_one_line_error(result, *fragments, status=2):
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def leftovers(directory: Path) -> list[str]:
    """Temporary output files (``.NAME.XXXX.part``) left in a directory."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory):
    """Descriptor files: k=32 with provenance, k=8 with provenance, integers, no provenance."""
    root = tmp_path_factory.mktemp("npz")
    frames = load_example()
    x32 = np.asarray(jaxinfo.descriptors(frames[:2], dtype=jnp.float32))
    x8 = np.asarray(jaxinfo.descriptors(frames[:2], k=8, dtype=jnp.float32))
    paths = {
        "k32": root / "k32.npz",
        "k8": root / "k8.npz",
        "ints": root / "ints.npz",
        "plain": root / "plain.npy",
    }
    jio.save_descriptors(paths["k32"], x32, k=32, cutoff=5.0, species="none")
    jio.save_descriptors(paths["k8"], x8, k=8, cutoff=5.0, species="none")
    jio.save_descriptors(paths["ints"], np.ones((4, 63), dtype=np.int64))
    np.save(paths["plain"], x32)
    return paths


# --------------------------------------------------------------------------------------------
# Interrupts: exit 130 (SIGINT) / 143 (SIGTERM), one line, no partial file


LONG_RUN = ["learning-curve", "--example", "-n", "50", "-b", "0.01,0.015,0.02"]


@pytest.mark.float32_only
@pytest.mark.parametrize(
    ("signum", "delay"),
    [
        (signal.SIGINT, 0.3),  # while Python and JAX are still being imported
        (signal.SIGTERM, 0.3),
        (signal.SIGINT, 5.0),  # while computing
        (signal.SIGTERM, 5.0),
    ],
)
def test_interrupt_exits_with_one_line_and_no_partial_file(tmp_path, env, signum, delay):
    out, png = tmp_path / "curve.json", tmp_path / "curve.png"
    process = subprocess.Popen(
        [*command(), *LONG_RUN, "-o", str(out), "--plot", str(png)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, (process.returncode, stderr)
    lines = stderr.strip().splitlines()
    expected = "jaxinfo: interrupted" if signum == signal.SIGINT else "jaxinfo: terminated"
    assert lines == [expected], stderr
    assert not out.exists() and not png.exists()
    assert leftovers(tmp_path) == []


def test_pending_temporary_files_are_removed_on_interrupt(tmp_path):
    """The signal path deletes outputs still being written (registered by atomic_output)."""
    import jaxinfo_launch

    out = tmp_path / "x.json"
    # (the real signal path ends the process after deleting; here the rename then fails)
    with pytest.raises(OSError), jio.atomic_output(out) as handle:
        handle.write("{")
        assert leftovers(tmp_path)  # the temporary file exists while writing
        jaxinfo_launch._remove_pending_outputs()
        assert leftovers(tmp_path) == []
    assert not out.exists()


def test_atomic_output_keeps_the_old_file_on_error(tmp_path):
    out = tmp_path / "keep.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), jio.atomic_output(out, overwrite=True) as handle:
        handle.write("new, half")
        raise RuntimeError("interrupted while writing")
    assert out.read_text() == "old"
    assert leftovers(tmp_path) == []
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        with jio.atomic_output(out) as handle:
            handle.write("new")
    assert out.read_text() == "old"


# --------------------------------------------------------------------------------------------
# Outputs: checked before computing, never overwritten, JSON kept when stdout closes


@pytest.mark.float32_only
def test_unwritable_directory_is_reported_before_computing(tmp_path, env):
    """/proc takes no new files, even for root: the error comes before any work."""
    start = time.perf_counter()
    result = run(["entropy", "--example", "-o", "/proc/jaxinfo-test.json"], tmp_path, env)
    assert_one_line_error(result, "/proc")
    assert result.stdout == ""
    assert time.perf_counter() - start < 60


@pytest.mark.float32_only
def test_no_overwrite_without_flag_for_every_output_kind(tmp_path, env):
    spec = f"{EXAMPLE}@0"
    cases = {
        "taken.npz": ["descriptors", spec, "-o", "taken.npz"],
        "taken.xyz": ["dh", spec, "-r", spec, "--extxyz", "taken.xyz"],
        "taken.png": ["learning-curve", spec, "--sizes", "8", "--plot", "taken.png"],
    }
    for name, args in cases.items():
        (tmp_path / name).write_bytes(b"keep me")
        result = run(args, tmp_path, env)
        assert_one_line_error(result, "refusing to overwrite", name)
        assert (tmp_path / name).read_bytes() == b"keep me"
    assert leftovers(tmp_path) == []


@pytest.mark.float32_only
def test_closed_stdout_keeps_the_json(tmp_path, env):
    """`jaxinfo dh ... -o x.json | head -1`: the JSON is written before the tables, and the
    closed pipe ends the run quietly (status 0, nothing on stderr)."""
    out = tmp_path / "dh.json"
    args = ["dh", f"{EXAMPLE}@48:60", "-r", f"{EXAMPLE}@0:2", "--top", "1296", "-o", str(out)]
    process = subprocess.Popen(
        [*command(), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    process.wait(timeout=300)
    assert first
    assert process.returncode == 0, stderr
    assert stderr.strip() == "", stderr
    record = json.loads(out.read_text())
    assert len(record["delta_entropy"]) == 1296


# --------------------------------------------------------------------------------------------
# Bad numbers and incompatible descriptor files: one line, status 2


BAD_INPUTS = {
    "fractions above 1": (["learning-curve", "{ex}", "-f", "0,1.5"], ["--fractions", "(0, 1]"]),
    "fractions text": (["learning-curve", "{ex}", "-f", "abc"], ["--fractions", "abc"]),
    "fraction negative": (["learning_curve", "{ex}", "-f", "0.5,-0.1"], ["--fractions", "-0.1"]),
    "bandwidth too small": (["entropy", "{ex}", "-b", "1e-12"], ["--bandwidth", "between"]),
    "bandwidth too large": (["entropy", "{ex}", "-b", "1e3"], ["--bandwidth", "between"]),
    "bandwidth nan": (["entropy", "{ex}", "-b", "nan"], ["--bandwidth", "finite"]),
    "eps nan": (["overlap", "{ex}", "-r", "{ex}", "--eps", "nan"], ["--eps", "finite"]),
    "integer descriptors": (["entropy", "{ints}"], ["floating-point", "ints.npz"]),
    "mixed k": (["dh", "{k8}", "-r", "{k32}"], ["different k", "k8.npz", "k32.npz"]),
    "k contradicts npz": (["entropy", "{k32}", "--nbrs", "16"], ["-k 16", "k=32"]),
    "cutoff contradicts npz": (["entropy", "{k32}", "-c", "4"], ["--cutoff 4.0", "cutoff=5.0"]),
    "k contradicts width": (["entropy", "{plain}", "-k", "16"], ["width 31", "63 columns"]),
    "auto without volume": (["entropy", "{k32}", "-b", "auto"], ["-b auto"]),
    "dh without reference": (["dH", "{ex}"], ["-r/--reference", "--against"]),
    "previous with reference": (
        ["dh", "{ex}", "-r", "{ex}", "--against", "previous"],
        ["drop -r"],
    ),
}


@pytest.mark.float32_only
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line(tmp_path, npz_files, name, capsys):
    """Through main() in this process (the same code path as the console script)."""
    from jaxinfo.cli import main

    case, fragments = BAD_INPUTS[name]
    names = {key: str(path) for key, path in npz_files.items()}
    argv = [part.format(ex=f"{EXAMPLE}@0", **names) for part in case]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    captured = capsys.readouterr()
    result = subprocess.CompletedProcess(argv, code, captured.out, captured.err)
    assert_one_line_error(result, *fragments)


@pytest.mark.float32_only
def test_bad_inputs_through_the_installed_command(tmp_path, env, npz_files):
    """A few of the cases above through the real console script: no traceback, status 2."""
    for name in ("fractions above 1", "mixed k", "integer descriptors"):
        case, fragments = BAD_INPUTS[name]
        names = {key: str(path) for key, path in npz_files.items()}
        argv = [part.format(ex=f"{EXAMPLE}@0", **names) for part in case]
        assert_one_line_error(run(argv, tmp_path, env), *fragments)


def test_entropy_of_a_file_name_is_a_clear_error():
    with pytest.raises(ValueError, match="descriptors"):
        jaxinfo.entropy("al.xyz")


# --------------------------------------------------------------------------------------------
# Provenance: labels survive a descriptor file, -k/--cutoff taken from it


@pytest.mark.float32_only
def test_npz_keeps_frame_and_atom_labels(tmp_path, env):
    """dh on descriptor files reports the same (source, frame, atom) as on the structures."""
    spec = f"{EXAMPLE}@48:50"
    run(["descriptors", spec, "-o", "liquid.npz"], tmp_path, env).check_returncode()
    with np.load(tmp_path / "liquid.npz") as stored:
        assert int(stored["k"]) == 32 and float(stored["cutoff"]) == 5.0
        assert str(stored["species"]) == "none" and str(stored["dtype"]) == "float32"
        assert stored["row_frame"].tolist() == [48] * 108 + [49] * 108
        assert stored["row_atom"].tolist() == list(range(108)) * 2
    reference = f"{EXAMPLE}@0:2"
    direct = run(["dh", spec, "-r", reference, "-o", "a.json"], tmp_path, env)
    direct.check_returncode()
    via_npz = run(["dh", "liquid.npz", "-r", reference, "-o", "b.json"], tmp_path, env)
    via_npz.check_returncode()
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    strip = [{k: v for k, v in row.items() if k != "dH"} for row in a["most_novel"]]
    assert strip == [{k: v for k, v in row.items() if k != "dH"} for row in b["most_novel"]]
    assert [f["frame"] for f in b["per_frame"]] == ["48", "49"]
    np.testing.assert_allclose(a["delta_entropy"], b["delta_entropy"], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# dh along a trajectory, -b auto, aliases


@pytest.mark.float32_only
def test_dh_against_previous_frames_and_self(tmp_path, env):
    """--against previous: frame f against frames < f (the first has none); self: the
    peer's dH_traj (each frame against itself), also the default of the alias dH_traj."""
    spec = f"{EXAMPLE}@0:3"
    run(["dh", spec, "--against", "previous", "-o", "p.json"], tmp_path, env).check_returncode()
    run(["dH_traj", spec, "-o", "s.json"], tmp_path, env).check_returncode()
    previous = json.loads((tmp_path / "p.json").read_text())
    itself = json.loads((tmp_path / "s.json").read_text())
    assert previous["against"] == "previous" and itself["against"] == "self"
    frames = [np.asarray(jaxinfo.descriptors(a, dtype=jnp.float32)) for a in load_example()[:3]]
    values = previous["delta_entropy"]
    assert values[:32] == [None] * 32
    expected = np.asarray(jaxinfo.delta_entropy(frames[2], np.concatenate(frames[:2])))
    np.testing.assert_allclose(values[64:], expected, rtol=1e-5)
    expected_self = np.asarray(jaxinfo.delta_entropy(frames[1], frames[1]))
    np.testing.assert_allclose(itself["delta_entropy"][32:64], expected_self, rtol=1e-5)
    assert [f["frame"] for f in previous["per_frame"]] == ["0", "1", "2"]
    assert previous["per_frame"][0]["max"] is None


@pytest.mark.float32_only
def test_auto_bandwidth_from_atomic_volume(tmp_path, env):
    out = tmp_path / "auto.json"
    run(["entropy", f"{EXAMPLE}@0:2", "-b", "auto", "-o", out], tmp_path, env).check_returncode()
    record = json.loads(out.read_text())
    frames = load_example()[:2]
    volume = np.mean([jaxinfo.atomic_volume(a) for a in frames])
    h = jaxinfo.bandwidth_from_volume(volume)
    assert record["parameters"]["auto_bandwidth"]["h"] == pytest.approx(h)
    assert record["parameters"]["h"] == pytest.approx(h)
    x = jaxinfo.descriptors(frames, dtype=jnp.float32)
    assert record["entropy"] == pytest.approx(float(jaxinfo.entropy(x, h)), rel=1e-5)


@pytest.mark.float32_only
def test_python_dash_m_and_peer_spellings(tmp_path, env):
    result = subprocess.run(
        [sys.executable, "-m", "jaxinfo", "learning_curve", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "--fractions" in result.stdout
    from jaxinfo.cli import build_parser

    args = build_parser().parse_args(["dH", "a.xyz", "-r", "b.xyz", "--nbrs", "8"])
    assert args.k == 8


def test_cli_leaves_global_x64_alone(tmp_path, files_for_x64):
    """--dtype float64 runs inside jax.enable_x64; the process-wide setting is unchanged."""
    import jax

    from jaxinfo.cli import main

    before = jax.config.jax_enable_x64
    out = tmp_path / "x64.json"
    assert main(["entropy", files_for_x64, "--dtype", "float64", "-o", str(out)]) == 0
    assert jax.config.jax_enable_x64 == before
    assert json.loads(out.read_text())["parameters"]["dtype"] == "float64"


@pytest.fixture(scope="module")
def files_for_x64(tmp_path_factory):
    path = tmp_path_factory.mktemp("x64") / "one.xyz"
    ase.io.write(path, load_example()[0], format="extxyz")
    return str(path)


@pytest.mark.float32_only
def test_compilation_cache_goes_to_the_user_cache_dir(tmp_path, env):
    """The persistent cache is on by default under $XDG_CACHE_HOME/jaxinfo/jax and off with
    --no-cache or JAXINFO_NO_CACHE=1."""
    cache_home = tmp_path / "home_cache"
    own = dict(env, XDG_CACHE_HOME=str(cache_home))
    run(["entropy", f"{EXAMPLE}@0", "--no-cache"], tmp_path, own).check_returncode()
    assert not (cache_home / "jaxinfo" / "jax").exists()
    run(["entropy", f"{EXAMPLE}@0"], tmp_path, dict(own, JAXINFO_NO_CACHE="1")).check_returncode()
    assert not (cache_home / "jaxinfo" / "jax").exists()
    run(["entropy", f"{EXAMPLE}@0"], tmp_path, own).check_returncode()
    assert any((cache_home / "jaxinfo" / "jax").iterdir())


# --------------------------------------------------------------------------------------------
# Bounds 0 <= H <= D <= log N over every accepted bandwidth, both precisions


@st.composite
def descriptor_sets(draw):
    """Small descriptor-like sets: clusters, exact duplicates and far points, entries ~0-2."""
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-6, 1e-3, 0.05, 1.0]))
    x = rng.random((n, d)) * 2.0
    x = x[rng.integers(0, max(1, n // 2), n)] + scale * rng.normal(size=(n, d))
    if draw(st.booleans()):
        x[n // 2 :] = x[: n - n // 2]  # exact duplicate rows
    return np.abs(x)


@settings(max_examples=40)
@given(
    x=descriptor_sets(),
    log_h=st.floats(math.log10(MIN_BANDWIDTH), math.log10(MAX_BANDWIDTH)),
)
def test_bounds_hold_over_the_accepted_bandwidths(x, log_h, dtype):
    h = 10.0**log_h
    x = jnp.asarray(x, dtype=dtype)
    n = x.shape[0]
    entropy = float(jaxinfo.entropy(x, h))
    diversity = float(jaxinfo.diversity(x, h))
    slack = 1e-5 * math.log(n) + (1e-5 if dtype == jnp.float32 else 1e-12)
    assert math.isfinite(entropy) and math.isfinite(diversity)
    assert -slack <= entropy <= diversity + slack
    assert diversity <= math.log(n) + slack
