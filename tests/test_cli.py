"""The ``jaxinfo`` console command, run for real in subprocesses on files written to tmp_path.

Numbers in the JSON output are compared with the Python API computed here. Every CLI process
shares one persistent XLA compilation cache (a session temporary directory), so only the first
run of each shape pays for compilation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinfo
from jaxinfo import io as jio
from jaxinfo.datasets import example_path, load_example

EXAMPLE = str(example_path())

# The CLI runs in subprocesses whose precision is set by --dtype, not by the test's precision;
# numbers are compared with the API in float32 (and in float64 where a test says so).
pytestmark = pytest.mark.float32_only
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory):
    """Environment of the CLI processes: a shared XLA cache, no x64 unless asked for."""
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("xla_cache")),
        XDG_CACHE_HOME=str(tmp_path_factory.mktemp("xdg_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        JAX_PLATFORMS="cpu",
        COLUMNS="100",
    )
    return env


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """Input files in several formats, written from the bundled Cu frames."""
    root = tmp_path_factory.mktemp("inputs")
    frames = ase.io.read(EXAMPLE, ":")
    paths = {
        "xyz": root / "cu.xyz",
        "poscar": root / "POSCAR",
        "traj": root / "cu.traj",
        "npz": root / "cu.npz",
        "npz31": root / "narrow.npz",
        "garbage": root / "garbage.xyz",
        "unknown": root / "data.qqq",
        "clash": root / "clash.xyz",
        "surface": root / "surface.xyz",
    }
    ase.io.write(paths["xyz"], frames[:4], format="extxyz")
    ase.io.write(paths["surface"], frames[60:62], format="extxyz")
    ase.io.write(paths["poscar"], frames[36], format="vasp")
    ase.io.write(paths["traj"], frames[24:27], format="traj")
    x = jaxinfo.descriptors(frames[12:14], dtype=jnp.float32)
    jio.save_descriptors(paths["npz"], x, k=32, cutoff=5.0)
    jio.save_descriptors(paths["npz31"], np.ones((5, 31)))
    paths["garbage"].write_text("this is not\nan xyz file\n")
    paths["unknown"].write_text("1 2 3\n")
    clash = frames[0].copy()
    clash.positions[1] = clash.positions[0]
    ase.io.write(paths["clash"], [frames[1], clash], format="extxyz")
    return paths


def run(args, cwd, env, *, command=None, check=True):
    """Runs ``python -m jaxinfo.cli ARGS`` (or ``command``) and returns the CompletedProcess."""
    prefix = [sys.executable, "-m", "jaxinfo.cli"] if command is None else command
    argv = [*prefix, *map(str, args)]
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
        # progress bars are drawn only on a terminal; here stderr is a pipe
        assert "it/s" not in result.stderr and "%|" not in result.stderr, result.stderr
    return result


def assert_user_error(result, *fragments):
    """Exit status 2 and exactly one line 'jaxinfo: error: ...' on stderr, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jaxinfo: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def read_json(path):
    return json.loads(Path(path).read_text())


# --------------------------------------------------------------------------------------------
# Results equal the Python API's


@pytest.mark.float64_only
def test_entropy_float64_several_bandwidths_match_api(tmp_path, cli_env, files):
    """--dtype float64 switches JAX to x64; values match the API to 1e-9 for each bandwidth,
    and streaming one structure per chunk gives the same numbers."""
    out = tmp_path / "entropy.json"
    args = [f"{files['xyz']}@0:2", "--dtype", "float64", "-b", "0.01,0.02", "-b", "0.03"]
    result = run(["entropy", *args, "--chunk", "1", "-o", out], tmp_path, cli_env)
    assert "H (nats)" in result.stdout and "0.02" in result.stdout
    record = read_json(out)
    x = jaxinfo.descriptors(ase.io.read(files["xyz"], ":2"), dtype=jnp.float64)
    h = np.array([0.01, 0.02, 0.03])
    assert record["parameters"]["dtype"] == "float64"
    assert record["parameters"]["k"] == 32 and record["parameters"]["cutoff"] == 5.0
    assert record["parameters"]["h"] == [0.01, 0.02, 0.03]
    assert record["n_env"] == x.shape[0] == 64
    assert record["jaxinfo_version"] == jaxinfo.__version__
    assert record["inputs"]["input"][0]["n_structures"] == 2
    np.testing.assert_allclose(record["entropy"], jaxinfo.entropy(x, h), rtol=1e-9)
    np.testing.assert_allclose(record["diversity"], jaxinfo.diversity(x, h), rtol=1e-9)
    assert record["log_n"] == pytest.approx(np.log(64))


def test_multi_device_gives_the_same_numbers(tmp_path, cli_env, files):
    """--multi-device on 2 simulated CPU devices equals the single-device API."""
    out = tmp_path / "md.json"
    env = dict(cli_env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    run(["entropy", f"{files['xyz']}@0:2", "--multi-device", "-o", out], tmp_path, env)
    x = jaxinfo.descriptors(ase.io.read(files["xyz"], ":2"), dtype=jnp.float32)
    record = read_json(out)
    assert record["entropy"] == pytest.approx(float(jaxinfo.entropy(x)), rel=1e-6)
    assert record["diversity"] == pytest.approx(float(jaxinfo.diversity(x)), rel=1e-6)


def test_entropy_of_several_formats_per_input(tmp_path, cli_env, files):
    """POSCAR, an ASE trajectory with a frame selection and an .npz of descriptors at once:
    one row per input plus the union, each equal to the API (float32)."""
    out = tmp_path / "e.json"
    specs = [files["poscar"], f"{files['traj']}@1:3", files["npz"]]
    result = run(["entropy", *specs, "-o", out], tmp_path, cli_env)
    for spec in specs:
        assert str(spec) in result.stdout
    record = read_json(out)
    parts = [
        jaxinfo.descriptors(ase.io.read(files["poscar"]), dtype=jnp.float32),
        jaxinfo.descriptors(ase.io.read(files["traj"], "1:3"), dtype=jnp.float32),
        jio.load_descriptor_file(files["npz"]),
    ]
    assert [g["n_env"] for g in record["groups"]] == [32, 64, 64]
    for group, x in zip(record["groups"], parts, strict=True):
        assert group["entropy"] == pytest.approx(float(jaxinfo.entropy(x)), rel=1e-5)
        assert group["diversity"] == pytest.approx(float(jaxinfo.diversity(x)), rel=1e-5)
    union = np.concatenate(parts)
    assert record["entropy"] == pytest.approx(float(jaxinfo.entropy(union)), rel=1e-5)
    assert [entry["kind"] for entry in record["inputs"]["input"]] == [
        "structures",
        "structures",
        "descriptors",
    ]


def test_dh_on_bundled_dataset_writes_extxyz_json_and_plot(tmp_path, cli_env):
    """δH per environment: the extxyz read back by ase carries per-atom 'dH' equal to the
    JSON values and to jaxinfo.delta_entropy; --plot writes a PNG histogram."""
    xyz, out, png = tmp_path / "dH.xyz", tmp_path / "dH.json", tmp_path / "dH.png"
    test_spec, ref_spec = f"{EXAMPLE}@48:49", f"{EXAMPLE}@0:2"
    args = ["dh", test_spec, "-r", ref_spec, "--extxyz", xyz, "-o", out, "--plot", png]
    result = run(args, tmp_path, cli_env)
    assert "most novel environments" in result.stdout

    frames = ase.io.read(xyz, ":")
    assert len(frames) == 1 and len(frames[0]) == 108
    assert all(atoms.info["label"] == "liquid" for atoms in frames)
    per_atom = np.concatenate([atoms.arrays["dH"] for atoms in frames])
    record = read_json(out)
    np.testing.assert_allclose(per_atom, record["delta_entropy"], rtol=1e-6)

    test = jaxinfo.descriptors(load_example()[48:49], dtype=jnp.float32)
    ref = jaxinfo.descriptors(load_example()[0:2], dtype=jnp.float32)
    expected = np.asarray(jaxinfo.delta_entropy(test, ref))
    np.testing.assert_allclose(record["delta_entropy"], expected, rtol=1e-5)
    assert record["atoms_per_structure"] == [108]
    top = record["most_novel"][0]
    assert top["dH"] == pytest.approx(expected.max(), rel=1e-5)
    assert top["frame"] == "48" and top["source"] == test_spec
    assert top["atom"] == str(int(np.argmax(expected)))
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_overlap_matches_api(tmp_path, cli_env, files):
    out = tmp_path / "o.json"
    run(["overlap", files["npz"], "-r", f"{files['xyz']}@0:2", "-o", out], tmp_path, cli_env)
    record = read_json(out)
    y = jio.load_descriptor_file(files["npz"])
    x = jaxinfo.descriptors(ase.io.read(files["xyz"], ":2"), dtype=jnp.float32)
    assert record["overlap"] == pytest.approx(float(jaxinfo.overlap(y, x)), abs=1e-12)
    assert record["n_env_test"] == 64 and record["n_env_reference"] == 64


def test_descriptors_saved_to_npz_and_reused(tmp_path, cli_env, files):
    out = tmp_path / "x.npz"
    run(["descriptors", f"{files['xyz']}@0:2", "-k", "8", "-o", out], tmp_path, cli_env)
    x = jio.load_descriptor_file(out)
    expected = jaxinfo.descriptors(ase.io.read(files["xyz"], ":2"), k=8, dtype=jnp.float32)
    assert x.shape == (64, 15) and x.dtype == np.float32
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-7)
    with np.load(out) as stored:
        assert int(stored["k"]) == 8 and float(stored["cutoff"]) == 5.0
        assert stored["atoms_per_structure"].tolist() == [32, 32]


def test_bandwidth_from_volume_and_file(tmp_path, cli_env, files):
    out = tmp_path / "b.json"
    run(["bandwidth", "11.8", files["poscar"], "--method", "cutoff", "-o", out], tmp_path, cli_env)
    entries = read_json(out)["bandwidths"]
    volume = jaxinfo.atomic_volume(ase.io.read(files["poscar"]))
    assert entries[0]["h"] == pytest.approx(jaxinfo.bandwidth_from_volume(11.8, "cutoff"))
    assert entries[1]["volume"] == pytest.approx(volume)
    assert entries[1]["h"] == pytest.approx(jaxinfo.bandwidth_from_volume(volume, "cutoff"))


def test_learning_curve_draws_without_replacement(tmp_path, cli_env, files):
    out, png = tmp_path / "lc.json", tmp_path / "lc.png"
    args = ["learning-curve", f"{files['xyz']}@0:2", "--sizes", "16,40,64", "-n", "2"]
    run([*args, "-o", out, "--plot", png], tmp_path, cli_env)
    record = read_json(out)
    points = record["points"]
    assert [p["n_env"] for p in points] == [16, 40, 64]
    assert [p["runs"] for p in points] == [2, 2, 1]  # the full set is drawn once
    x = jaxinfo.descriptors(ase.io.read(files["xyz"], ":2"), dtype=jnp.float32)
    assert points[-1]["mean"] == pytest.approx(float(jaxinfo.entropy(x)), rel=1e-5)
    for point in points:
        assert 0 <= point["mean"] <= point["log_n"] + 1e-6
        assert point["mean"] == pytest.approx(np.mean(point["entropies"]))
    assert png.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.skipif(not hasattr(jaxinfo, "select"), reason="jaxinfo.select not available yet")
def test_compress_matches_select(tmp_path, cli_env, files):
    out, xyz = tmp_path / "c.json", tmp_path / "subset.xyz"
    args = ["compress", f"{files['xyz']}@0:4", "-s", "2", "-m", "fps", "--seed", "1"]
    run([*args, "-o", out, "--extxyz", xyz], tmp_path, cli_env)
    record = read_json(out)
    frames = ase.io.read(files["xyz"], ":4")
    per_structure = [jaxinfo.descriptors(a, dtype=jnp.float32) for a in frames]
    expected = jaxinfo.select(per_structure, 2, method="fps", h=0.015, seed=1)
    assert record["selected"] == [int(i) for i in np.asarray(expected)]
    written = ase.io.read(xyz, ":")
    for atoms, index in zip(written, record["selected"], strict=True):
        np.testing.assert_allclose(atoms.positions, frames[index].positions, atol=1e-6)


@pytest.mark.skipif(not hasattr(jaxinfo, "select"), reason="jaxinfo.select not available yet")
def test_compress_against_a_reference(tmp_path, cli_env, files):
    """-r selects what complements structures already held (msc_conditional)."""
    out = tmp_path / "c.json"
    args = ["compress", f"{files['xyz']}@1:4", "-r", f"{files['xyz']}@0", "-s", "1"]
    run([*args, "-o", out], tmp_path, cli_env)
    record = read_json(out)
    frames = ase.io.read(files["xyz"], ":4")
    per_structure = [jaxinfo.descriptors(a, dtype=jnp.float32) for a in frames[1:]]
    reference = jaxinfo.descriptors(frames[0], dtype=jnp.float32)
    expected = jaxinfo.select(per_structure, 1, method="msc_conditional", reference=reference)
    assert record["parameters"]["method"] == "msc_conditional"
    assert record["selected"] == [int(i) for i in np.asarray(expected)]
    result = run([*args, "-m", "fps"], tmp_path, cli_env, check=False)
    assert_user_error(result, "msc_conditional")


def installed_script() -> str:
    """Path of the installed ``jaxinfo`` console script (skips the test if there is none)."""
    beside_python = str(Path(sys.executable).parent)
    script = shutil.which("jaxinfo") or shutil.which("jaxinfo", path=beside_python)
    if script is None:
        pytest.skip("the jaxinfo console script is not installed")
    return script


def test_installed_script_runs(tmp_path, cli_env):
    script = installed_script()
    path = run(["example", "--path"], tmp_path, cli_env, command=[script]).stdout.strip()
    # The script may come from a non-editable install (as in CI): same file, other copy.
    assert Path(path).name == Path(EXAMPLE).name
    assert Path(path).read_bytes() == Path(EXAMPLE).read_bytes()
    result = run(["entropy", f"{path}@0:2"], tmp_path, cli_env, command=[script])
    assert "H (nats)" in result.stdout and " 64 " in result.stdout


@pytest.mark.slow
def test_quick_start_with_installed_script(tmp_path, cli_env):
    """The README's first command, through the installed console script."""
    script = installed_script()
    out = tmp_path / "example.json"
    result = run(["entropy", "--example", "-o", out], tmp_path, cli_env, command=[script])
    labels = [
        "bulk_300K",
        "bulk_600K",
        "bulk_900K",
        "bulk_1200K",
        "liquid",
        "surface_300K",
        "surface_600K",
    ]
    for label in [*labels, "all"]:
        assert label in result.stdout
    record = read_json(out)
    assert [g["name"] for g in record["groups"]] == labels
    assert record["n_env"] == 4368
    assert record["log_n"] == pytest.approx(np.log(4368))
    assert 0 < record["entropy"] <= record["diversity"] <= record["log_n"] + 1e-6
    bulk = jaxinfo.descriptors(load_example("bulk_300K"), dtype=jnp.float32)
    assert record["groups"][0]["entropy"] == pytest.approx(float(jaxinfo.entropy(bulk)), rel=1e-5)


def test_help_lists_every_verb(tmp_path, cli_env):
    from jaxinfo.cli import VERBS

    result = run(["--help"], tmp_path, cli_env)
    for name in VERBS:
        assert name in result.stdout
    assert {"entropy", "dh", "overlap", "descriptors", "bandwidth", "learning-curve"} <= set(VERBS)
    assert "compress" in VERBS
    version = run(["--version"], tmp_path, cli_env)
    assert jaxinfo.__version__ in version.stdout


# --------------------------------------------------------------------------------------------
# Errors a user can act on: one line, exit status 2, no traceback


# The cases the command line must handle, each through a real subprocess.
SUBPROCESS_ERRORS = {
    "missing file": (["entropy", "missing.xyz"], ["no such file: missing.xyz"]),
    "unparsable file": (["entropy", "{garbage}"], ["cannot read", "garbage.xyz"]),
    "unknown format": (["entropy", "{unknown}"], ["cannot determine the file format"]),
    "empty selection": (["entropy", "{xyz}@10:20"], ["selects no frames"]),
    "widths differ": (["dh", "{npz31}", "-r", "{xyz}@0:1"], ["widths differ", "narrow.npz"]),
    "bad k": (["entropy", "{xyz}", "-k", "0"], ["-k/--neighbours", ">= 1"]),
    "bad cutoff": (["entropy", "{xyz}", "--cutoff", "-1"], ["--cutoff", "> 0"]),
    "bad bandwidth": (["entropy", "{xyz}", "-b", "0.01,-0.02"], ["--bandwidth", "> 0"]),
}

# More cases through main() in this process (the same code path, without the start-up cost).
IN_PROCESS_ERRORS = {
    "coincident atoms": (["entropy", "{clash}"], ["clash.xyz, frame 1:", "same position"]),
    "k not an integer": (["entropy", "{xyz}", "-k", "2.5"], ["-k/--neighbours"]),
    "bandwidth nan": (["entropy", "{xyz}", "-b", "nan"], ["--bandwidth", "finite"]),
    "bandwidth text": (["overlap", "{xyz}", "-r", "{xyz}", "-b", "x"], ["--bandwidth"]),
    "no inputs": (["entropy"], ["no input files given", "--example"]),
    "inputs and example": (["entropy", "{xyz}", "--example"], ["not both"]),
    "directory": (["entropy", "{root}"], ["is a directory"]),
    "descriptor rows": (["entropy", "{npz}@100:"], ["selects no rows"]),
    "negative volume": (["bandwidth", "{xyz}@0", "-0.5"], ["atomic volume must be"]),
    "not a volume": (["bandwidth", "abc"], ["no such file: abc"]),
    "open cell volume": (["bandwidth", "{surface}@1"], ["surface.xyz@1, frame 1", "periodic"]),
    "npz suffix": (["descriptors", "{xyz}@0", "-o", "x.json"], ["must end in .npz"]),
    "unknown verb": (["nonsense-verb"], ["invalid choice"]),
    "no verb": ([], ["required: VERB"]),
    "missing reference": (["dh", "{xyz}"], ["-r/--reference"]),
    "extxyz from npz": (["dh", "{npz}", "-r", "{npz}", "--extxyz", "o.xyz"], ["--extxyz"]),
    "same output twice": (["dh", "{xyz}", "-r", "{xyz}", "-o", "a", "--plot", "a"], ["same"]),
    "bad fractions": (["learning-curve", "{xyz}", "-f", "0.5,2"], ["--fractions"]),
    "sizes too big": (["learning-curve", "{xyz}@0", "--sizes", "33"], ["exceed"]),
    "missing output dir": (["entropy", "{xyz}@0", "-o", "no/dir/x.json"], ["does not exist"]),
}


def _fill(case, files):
    names = {name: str(path) for name, path in files.items()}
    return [part.format(root=files["xyz"].parent, **names) for part in case]


@pytest.mark.parametrize("name", list(SUBPROCESS_ERRORS))
def test_user_errors_are_one_line(tmp_path, cli_env, files, name):
    case, fragments = SUBPROCESS_ERRORS[name]
    result = run(_fill(case, files), tmp_path, cli_env, check=False)
    assert_user_error(result, *fragments)


@pytest.mark.parametrize("name", list(IN_PROCESS_ERRORS))
def test_more_user_errors_in_process(tmp_path, files, capsys, monkeypatch, name):
    from jaxinfo.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAXINFO_NO_CACHE", "1")  # no cache in the home directory
    case, fragments = IN_PROCESS_ERRORS[name]
    try:
        code = main(_fill(case, files))
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    captured = capsys.readouterr()
    result = subprocess.CompletedProcess(case, code, captured.out, captured.err)
    assert_user_error(result, *fragments)


def test_debug_shows_the_traceback(tmp_path, cli_env):
    result = run(["entropy", "missing.xyz", "--debug"], tmp_path, cli_env, check=False)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "jaxinfo: error: no such file" in result.stderr


def test_existing_outputs_are_not_overwritten(tmp_path, cli_env, files):
    """Without --overwrite an existing output stops the run before any work (exit 2, the file
    untouched); with --overwrite it is replaced."""
    out = tmp_path / "taken.json"
    out.write_text("keep me")
    spec = f"{files['xyz']}@0"
    result = run(["entropy", spec, "-o", out], tmp_path, cli_env, check=False)
    assert_user_error(result, "refusing to overwrite", "taken.json", "--overwrite")
    assert out.read_text() == "keep me"
    plot = tmp_path / "taken.png"
    plot.write_bytes(b"old")
    result = run(["dh", spec, "-r", spec, "--plot", plot], tmp_path, cli_env, check=False)
    assert_user_error(result, "refusing to overwrite", "taken.png")
    assert plot.read_bytes() == b"old"

    run(["entropy", spec, "-o", out, "--overwrite"], tmp_path, cli_env)
    assert read_json(out)["n_env"] == 32
