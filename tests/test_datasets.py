"""Tests for the bundled example dataset (jaxinfo.datasets, jaxinfo/data/cu_example.xyz)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms

from jaxinfo.datasets import example_labels, example_path, load_example
from jaxinfo.io import iter_structures

LABELS = [
    "bulk_300K",
    "bulk_600K",
    "bulk_900K",
    "bulk_1200K",
    "liquid",
    "surface_300K",
    "surface_600K",
]
SIZES = {label: 32 for label in LABELS[:4]} | {
    "liquid": 108,
    "surface_300K": 64,
    "surface_600K": 64,
}
FRAMES_PER_LABEL = 12
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_example_data.py"


@pytest.fixture(scope="module")
def frames() -> list[Atoms]:
    return load_example()


def test_example_path():
    path = example_path()
    assert isinstance(path, Path)
    assert path.is_file()
    assert path.name == "cu_example.xyz"
    assert path.stat().st_size < 400 * 1024  # small enough to ship with the package


def test_composition(frames):
    assert len(frames) == FRAMES_PER_LABEL * len(LABELS)
    assert example_labels() == LABELS
    for label in LABELS:
        group = [a for a in frames if a.info["label"] == label]
        assert len(group) == FRAMES_PER_LABEL
        assert {len(a) for a in group} == {SIZES[label]}
    assert sum(len(a) for a in frames) == 4368


def test_frame_contents(frames):
    for atoms in frames:
        assert set(atoms.get_chemical_symbols()) == {"Cu"}
        assert isinstance(atoms.info["label"], str)
        assert "energy" not in atoms.info  # ase.io.write refuses it next to the calculator
        assert isinstance(atoms.get_potential_energy(), float)
        assert atoms.get_forces().shape == (len(atoms), 3)
        assert np.all(np.isfinite(atoms.positions))
        assert atoms.info["temperature_K"] > 0
        surface = atoms.info["label"].startswith("surface")
        assert atoms.pbc.tolist() == ([True, True, False] if surface else [True, True, True])
        assert atoms.cell.volume > 0


def test_minimum_distances_are_physical(frames):
    for atoms in frames[:: FRAMES_PER_LABEL // 2]:
        d = atoms.get_all_distances(mic=True)
        d[np.diag_indices_from(d)] = np.inf
        assert d.min() > 1.7  # Å; Cu-Cu nearest neighbours are ~2.55 Å


def test_energy_ordering(frames):
    """Hotter and less ordered structures have higher EMT energy per atom."""

    def mean_energy(label):
        group = [a for a in frames if a.info["label"] == label]
        return np.mean([a.get_potential_energy() / len(a) for a in group])

    bulk = [mean_energy(label) for label in LABELS[:4]]
    assert bulk == sorted(bulk)
    assert mean_energy("liquid") > bulk[-1]
    assert mean_energy("surface_300K") > bulk[0]


@pytest.mark.parametrize("label", ["liquid", "surface_300K"])
def test_load_example_filter(label):
    selected = load_example(label)
    assert len(selected) == FRAMES_PER_LABEL
    assert all(a.info["label"] == label for a in selected)


def test_load_example_several_labels():
    selected = load_example(["bulk_300K", "liquid"])
    assert [a.info["label"] for a in selected] == ["bulk_300K"] * 12 + ["liquid"] * 12


def test_load_example_unknown_label():
    with pytest.raises(ValueError, match="available: bulk_300K") as info:
        load_example("gas")
    assert "surface_600K" in str(info.value)
    assert "'gas'" in str(info.value)


def test_load_example_returns_fresh_copies():
    first = load_example("bulk_300K")
    first[0].positions[:] = 0.0
    assert not np.allclose(load_example("bulk_300K")[0].positions, 0.0)


def test_readable_through_io_sources():
    path = example_path()
    assert len(list(iter_structures(f"{path}@48:60"))) == 12
    assert {a.info["label"] for a in iter_structures(f"{path}@48:60")} == {"liquid"}
    assert len(ase.io.read(path, index=":")) == 84


def test_script_refuses_to_overwrite(tmp_path):
    target = tmp_path / "existing.xyz"
    target.write_text("keep me")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "--overwrite" in result.stderr
    assert target.read_text() == "keep me"


@pytest.mark.slow
@pytest.mark.float32_only  # a subprocess regenerates the data; the precision is not involved
def test_script_is_deterministic(tmp_path):
    """One frame per condition reproduces the first frame of each condition in the shipped file.

    Runs the full equilibration of every condition (about a minute on two cores). The MD is
    deterministic but not bit-reproducible across numpy/BLAS builds: last-bit differences in the
    forces are amplified by the dynamics, most in the liquid (measured with numpy 2.4.6: solid
    and surface frames identical to 6 decimals with energies within 6e-14 relative; the liquid
    within 1.5e-5 A and 4e-7 relative). A changed recipe (seed, temperature, steps) moves atoms
    by ~0.1-1 A, far beyond the tolerances below.
    """
    out = tmp_path / "cu.xyz"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(out), "--frames", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    regenerated = ase.io.read(out, index=":")
    shipped = {a.info["label"]: a for a in reversed(load_example())}  # first frame of each label
    assert [a.info["label"] for a in regenerated] == LABELS
    for atoms in regenerated:
        reference = shipped[atoms.info["label"]]
        np.testing.assert_allclose(atoms.positions, reference.positions, rtol=0, atol=1e-3)
        assert atoms.get_potential_energy() == pytest.approx(
            reference.get_potential_energy(), rel=1e-5
        )


def test_frames_can_be_written_back(tmp_path):
    """ase.io.write accepts the frames as load_example returns them (issue 9)."""
    frames = load_example("liquid")
    out = tmp_path / "liquid.xyz"
    ase.io.write(out, frames, format="extxyz")
    again = ase.io.read(out, index=":")
    assert len(again) == len(frames)
    np.testing.assert_array_equal(again[0].positions, frames[0].positions)
    assert again[0].get_potential_energy() == frames[0].get_potential_energy()
