"""Tests for jaxinfo.io: source grammar, streaming input, descriptor and per-atom files."""

from __future__ import annotations

import types
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxinfo import io as jio
from jaxinfo.io import (
    InputError,
    MissingInputError,
    check_writable,
    is_descriptor_file,
    iter_structures,
    load_descriptor_file,
    parse_source,
    read_structures,
    save_descriptors,
    write_per_atom,
)

N_FRAMES = 7


def _frames(n: int = N_FRAMES) -> list[Atoms]:
    """Small periodic Cu cells; frame i has info['i'] = i and a z-offset of 0.1 i Å on atom 0."""
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61) * (1, 1, 2)
        atoms.positions[0, 2] += 0.1 * i
        atoms.info["i"] = i
        frames.append(atoms)
    return frames


def _frame_id(atoms: Atoms) -> int:
    """Recovers the frame number from the geometry (works for formats that drop atoms.info)."""
    return round(float(atoms.positions[0, 2]) / 0.1)


@pytest.fixture(scope="module")
def multi_files(tmp_path_factory) -> dict[str, Path]:
    """The same N_FRAMES frames as extxyz and as an ASE trajectory."""
    root = tmp_path_factory.mktemp("multi")
    files = {"extxyz": root / "md.xyz", "traj": root / "md.traj"}
    ase.io.write(files["extxyz"], _frames(), format="extxyz")
    ase.io.write(files["traj"], _frames(), format="traj")
    return files


# --------------------------------------------------------------------------- parse_source


@pytest.mark.parametrize(
    ("spec", "path", "index"),
    [
        ("md.xyz", "md.xyz", slice(None)),
        ("md.xyz@5", "md.xyz", 5),
        ("md.xyz@-1", "md.xyz", -1),
        ("md.xyz@+2", "md.xyz", 2),
        ("md.xyz@0:100:2", "md.xyz", slice(0, 100, 2)),
        ("md.xyz@::10", "md.xyz", slice(None, None, 10)),
        ("md.xyz@-3:", "md.xyz", slice(-3, None)),
        ("md.xyz@:5", "md.xyz", slice(None, 5)),
        ("md.xyz@:", "md.xyz", slice(None)),
        ("md.xyz@::-1", "md.xyz", slice(None, None, -1)),
        ("dir/sub/md.extxyz@1:-1", "dir/sub/md.extxyz", slice(1, -1)),
        # '@' elsewhere in the path is part of the path
        ("run@host/md.xyz", "run@host/md.xyz", slice(None)),
        ("run@3/md.xyz@2", "run@3/md.xyz", 2),
        ("user@example.xyz", "user@example.xyz", slice(None)),
        ("md.xyz@1:2:3:4", "md.xyz@1:2:3:4", slice(None)),
        ("md.xyz@", "md.xyz@", slice(None)),
        ("md.xyz@1.5", "md.xyz@1.5", slice(None)),
        # a file whose name ends in '@5' is read whole with a trailing '@:'
        ("odd@5@:", "odd@5", slice(None)),
    ],
)
def test_parse_source(spec, path, index):
    assert parse_source(spec) == (Path(path), index)


@pytest.mark.parametrize("spec", ["@5", "@:", "md.xyz@::0", "md.xyz@1:5:0", ""])
def test_parse_source_rejects(spec):
    with pytest.raises(InputError):
        parse_source(spec)


def test_parse_source_rejects_non_string():
    with pytest.raises(TypeError, match="string"):
        parse_source(Path("md.xyz"))


_bound = st.one_of(st.none(), st.integers(-20, 20))


@settings(max_examples=60, deadline=None)
@given(start=_bound, stop=_bound, step=st.one_of(st.none(), st.integers(-5, 5).filter(bool)))
def test_parse_source_slice_round_trip(start, stop, step):
    text = ":".join("" if v is None else str(v) for v in (start, stop))
    if step is not None:
        text += f":{step}"
    assert parse_source(f"a@b.xyz@{text}") == (Path("a@b.xyz"), slice(start, stop, step))


# --------------------------------------------------------------------------- reading structures


SELECTIONS = ["", "@0", "@3", "@-1", "@-7", "@2:5", "@::2", "@1::3", "@-3:", "@:-2", "@-100:3"]
SELECTIONS += ["@2:100", "@::-1", "@5:1:-2", "@-2::-3", "@:"]
SELECTIONS += ["@-5:4", "@-6:6:2", "@1:-2:2"]  # mixed signs (ase's extxyz ignored the start)


@pytest.mark.parametrize("fmt", ["extxyz", "traj"])
@pytest.mark.parametrize("selection", SELECTIONS)
def test_selection_matches_python_indexing(multi_files, fmt, selection):
    path = multi_files[fmt]
    _, index = parse_source(f"x{selection}")
    expected = list(range(N_FRAMES))[index] if isinstance(index, slice) else [range(7)[index]]
    got = [_frame_id(atoms) for atoms in iter_structures(f"{path}{selection}")]
    assert got == expected


@settings(max_examples=40, deadline=None)
@given(start=_bound, stop=_bound, step=st.one_of(st.none(), st.integers(-4, 4).filter(bool)))
def test_selection_matches_python_indexing_property(multi_files, start, stop, step):
    index = slice(start, stop, step)
    expected = list(range(N_FRAMES))[index]
    text = ":".join("" if v is None else str(v) for v in (start, stop, step))
    source = f"{multi_files['extxyz']}@{text}"
    if not expected:
        with pytest.raises(InputError, match="selects no frames"):
            list(iter_structures(source))
    else:
        assert [_frame_id(a) for a in iter_structures(source)] == expected


def test_extxyz_keeps_info(multi_files):
    frames = list(iter_structures(f"{multi_files['extxyz']}@1::2"))
    assert [atoms.info["i"] for atoms in frames] == [1, 3, 5]
    assert all(isinstance(atoms, Atoms) and len(atoms) == 2 for atoms in frames)


def test_iter_structures_streams_with_iread(tmp_path, monkeypatch):
    """Frames are pulled from ase.io.iread one at a time, never read whole with ase.io.read."""
    path = tmp_path / "long.xyz"
    ase.io.write(path, _frames(50), format="extxyz")
    pulled = []
    real_iread = ase.io.iread

    def counting_iread(*args, **kwargs):
        for atoms in real_iread(*args, **kwargs):
            pulled.append(_frame_id(atoms))
            yield atoms

    def no_read(*args, **kwargs):
        raise AssertionError("ase.io.read must not be used for streaming")

    monkeypatch.setattr(ase.io, "iread", counting_iread)
    monkeypatch.setattr(ase.io, "read", no_read)
    stream = iter_structures(f"{path}@::5")
    assert isinstance(stream, types.GeneratorType)
    assert pulled == []  # nothing parsed before the first request
    first = next(stream)
    assert _frame_id(first) == 0
    assert pulled == [0]
    assert _frame_id(next(stream)) == 5
    assert pulled == [0, 5]
    assert [_frame_id(a) for a in stream] == list(range(10, 50, 5))


def test_poscar(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.01, rng=np.random.default_rng(0))
    for name in ("POSCAR", "cu.vasp"):
        path = tmp_path / name
        ase.io.write(path, atoms, format="vasp")
        for selection in ("", "@0", "@-1", "@:", "@0:1"):
            (got,) = list(iter_structures(f"{path}{selection}"))
            np.testing.assert_allclose(got.positions, atoms.positions, atol=1e-6)
            np.testing.assert_allclose(got.cell[:], atoms.cell[:], atol=1e-6)
        for selection in ("@1", "@-2", "@1:"):
            with pytest.raises(InputError, match="selects no frames"):
                list(iter_structures(f"{path}{selection}"))


def test_explicit_format(tmp_path):
    path = tmp_path / "structure.txt"
    ase.io.write(path, _frames(2), format="extxyz")
    with pytest.raises(InputError, match=r"structure\.txt"):
        iter_structures(str(path))  # cannot be guessed from the name or content
    assert [_frame_id(a) for a in iter_structures(str(path), format="extxyz")] == [0, 1]
    with pytest.raises(InputError, match="no-such-format"):
        iter_structures(str(path), format="no-such-format")


def test_pathlike_is_literal(tmp_path):
    path = tmp_path / "odd@1"
    ase.io.write(path, _frames(3), format="extxyz")
    assert len(list(iter_structures(path, format="extxyz"))) == 3
    assert len(list(iter_structures(f"{path}@:", format="extxyz"))) == 3


def test_missing_file(tmp_path):
    path = tmp_path / "nope.xyz"
    with pytest.raises(MissingInputError, match=r"nope\.xyz") as info:
        iter_structures(f"{path}@2")  # raised on the call, before iteration
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, InputError)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_directory(tmp_path):
    with pytest.raises(InputError, match="directory"):
        iter_structures(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.xyz", "this is\nnot an xyz file\n at all\n"),
        ("garbage.xyz", "3\ncomment\nCu 0 0 0\nCu 1 1\n"),  # truncated frame
        ("garbage.traj", "definitely not a trajectory\n"),
        ("garbage.dat", "\x00\x01binary junk\xff"),
        ("POSCAR", "Cu\n1.0\nnot numbers\n"),
    ],
)
def test_unreadable_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(InputError) as info:
        list(iter_structures(str(path)))
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_empty_selection(multi_files):
    for selection in ("@7", "@-8", "@5:5", "@10:", "@3:1", "@-2:1", "@4:-4"):
        with pytest.raises(InputError, match="selects no frames") as info:
            list(iter_structures(f"{multi_files['extxyz']}{selection}"))
        assert "md.xyz" in str(info.value)
    with pytest.raises(InputError, match="selects no frames"):
        list(iter_structures(f"{multi_files['traj']}@7"))


def test_empty_file(tmp_path):
    path = tmp_path / "blank.xyz"
    path.write_text("")
    with pytest.raises(InputError, match=r"blank\.xyz is empty"):
        iter_structures(str(path))
    path = tmp_path / "blank.npy"
    path.write_text("")
    with pytest.raises(InputError, match=r"blank\.npy is empty"):
        load_descriptor_file(path)


def test_read_structures(multi_files, tmp_path):
    poscar = tmp_path / "POSCAR"
    ase.io.write(poscar, bulk("Cu"), format="vasp")
    frames = read_structures(
        [f"{multi_files['extxyz']}@:2", str(poscar), f"{multi_files['traj']}@-1"]
    )
    assert isinstance(frames, list)
    assert len(frames) == 4
    assert [_frame_id(a) for a in frames[:2]] == [0, 1]
    assert len(frames[2]) == 1
    assert _frame_id(frames[3]) == N_FRAMES - 1
    # one source given as a bare string is one source, not a sequence of characters
    assert len(read_structures(f"{multi_files['extxyz']}@::3")) == 3
    assert read_structures([]) == []
    with pytest.raises(MissingInputError, match=r"missing\.xyz"):
        read_structures([str(multi_files["extxyz"]), str(tmp_path / "missing.xyz")])


# --------------------------------------------------------------------------- descriptor files


@pytest.mark.parametrize(
    ("name", "expected"),
    [("x.npz", True), ("x.NPY", True), ("dir/x.npy", True), ("x.xyz", False), ("npz", False)],
)
def test_is_descriptor_file(name, expected):
    assert is_descriptor_file(name) is expected
    assert is_descriptor_file(Path(name)) is expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npz_round_trip(tmp_path, dtype):
    x = np.random.default_rng(0).random((11, 63)).astype(dtype)
    path = tmp_path / "desc.npz"
    out = save_descriptors(path, x, k=32, cutoff=5.0, h=[0.015, 0.03], source="md.xyz@::2")
    assert out == path
    y = load_descriptor_file(path)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, x)
    with np.load(path, allow_pickle=False) as stored:
        assert set(stored.files) == {"descriptors", "k", "cutoff", "h", "source"}
        assert int(stored["k"]) == 32
        assert float(stored["cutoff"]) == 5.0
        np.testing.assert_array_equal(stored["h"], [0.015, 0.03])
        assert str(stored["source"]) == "md.xyz@::2"


def test_npy_round_trip(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = tmp_path / "desc.npy"
    np.save(path, x)
    y = load_descriptor_file(str(path))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)
    np.save(path, np.arange(6).reshape(2, 3))  # integers are refused (issue 13)
    with pytest.raises(InputError, match="floating-point"):
        load_descriptor_file(path)


def test_npz_single_other_key(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, features=np.ones((3, 5)))
    np.testing.assert_array_equal(load_descriptor_file(path), np.ones((3, 5)))


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"a": np.ones((2, 3)), "b": np.ones((2, 3))}, "cannot tell"),
        ({}, "cannot tell"),
        ({"descriptors": np.ones(5)}, "2-D"),
        ({"descriptors": np.ones((2, 3, 4))}, "2-D"),
        ({"descriptors": np.ones((0, 3))}, "empty"),
        ({"descriptors": np.array([["a", "b"]])}, "floating-point"),
        ({"descriptors": np.array([[1.0, np.nan]])}, "NaN"),
    ],
)
def test_bad_npz(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=match) as info:
        load_descriptor_file(path)
    assert "bad.npz" in str(info.value)


def test_bad_descriptor_files(tmp_path):
    with pytest.raises(MissingInputError, match=r"absent\.npz"):
        load_descriptor_file(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(InputError, match=r"junk\.npy"):
        load_descriptor_file(junk)
    junk_npz = tmp_path / "junk.npz"
    junk_npz.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(InputError, match=r"junk\.npz"):
        load_descriptor_file(junk_npz)
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"pickled\.npy"):
        load_descriptor_file(pickled)
    with pytest.raises(InputError, match="not a descriptor file"):
        load_descriptor_file(tmp_path / "x.xyz")


def test_save_descriptors_overwrite(tmp_path):
    path = tmp_path / "desc.npz"
    save_descriptors(path, np.zeros((2, 3)))
    with pytest.raises(FileExistsError, match="overwrite") as info:
        save_descriptors(path, np.ones((2, 3)))
    assert "desc.npz" in str(info.value)
    np.testing.assert_array_equal(load_descriptor_file(path), np.zeros((2, 3)))  # untouched
    save_descriptors(path, np.ones((2, 3)), overwrite=True)
    np.testing.assert_array_equal(load_descriptor_file(path), np.ones((2, 3)))


def test_save_descriptors_rejects(tmp_path):
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="npz"):
        save_descriptors(tmp_path / "desc.npy", x)
    with pytest.raises(ValueError, match="2-D"):
        save_descriptors(tmp_path / "desc.npz", np.zeros(3))
    with pytest.raises(ValueError, match="reserved"):
        save_descriptors(tmp_path / "desc.npz", x, descriptors=1)
    with pytest.raises(ValueError, match="pickle"):
        save_descriptors(tmp_path / "desc.npz", x, note=None)
    assert not (tmp_path / "desc.npz").exists()


def test_check_writable(tmp_path):
    target = tmp_path / "out.npz"
    assert check_writable(str(target), overwrite=False) == target
    target.write_text("x")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        check_writable(target, overwrite=False)
    assert check_writable(target, overwrite=True) == target
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_writable(tmp_path / "no" / "out.npz", overwrite=True)


# --------------------------------------------------------------------------- per-atom output


def test_write_per_atom_round_trip(tmp_path):
    structures = [bulk("Cu", "fcc", a=3.61, cubic=True), bulk("Cu") * (2, 1, 1), bulk("Cu")]
    structures[0].calc = SinglePointCalculator(structures[0], energy=-1.25)
    counts = [len(s) for s in structures]  # 4, 2, 1
    n_env = sum(counts)
    rng = np.random.default_rng(1)
    dh = rng.normal(size=n_env)
    vec = rng.normal(size=(n_env, 3)).astype(np.float32)
    novel = dh > 0
    path = tmp_path / "dh.xyz"
    out = write_per_atom(path, structures, {"dH": dh, "vec": vec, "novel": novel})
    assert out == path
    assert all("dH" not in s.arrays for s in structures)  # inputs untouched

    back = ase.io.read(path, index=":")
    assert [len(a) for a in back] == counts
    offsets = np.cumsum([0, *counts])
    for i, atoms in enumerate(back):
        np.testing.assert_allclose(atoms.arrays["dH"], dh[offsets[i] : offsets[i + 1]], atol=1e-7)
        np.testing.assert_allclose(atoms.arrays["vec"], vec[offsets[i] : offsets[i + 1]], atol=1e-6)
        np.testing.assert_array_equal(atoms.arrays["novel"], novel[offsets[i] : offsets[i + 1]])
        np.testing.assert_allclose(atoms.positions, structures[i].positions, atol=1e-7)
        np.testing.assert_array_equal(atoms.pbc, structures[i].pbc)
    assert back[0].get_potential_energy() == pytest.approx(-1.25)

    with pytest.raises(FileExistsError, match="overwrite"):
        write_per_atom(path, structures, {"dH": -dh})
    np.testing.assert_allclose(ase.io.read(path, index=0).arrays["dH"], dh[:4], atol=1e-7)
    write_per_atom(path, structures, {"dH": -dh}, overwrite=True)
    np.testing.assert_allclose(ase.io.read(path, index=0).arrays["dH"], -dh[:4], atol=1e-7)


def test_write_per_atom_single_structure_and_readback(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    path = tmp_path / "one.xyz"
    write_per_atom(path, atoms, {"dH": np.arange(4.0)})
    (back,) = list(iter_structures(str(path)))
    np.testing.assert_array_equal(back.arrays["dH"], np.arange(4.0))


def test_write_per_atom_rejects(tmp_path):
    structures = [bulk("Cu"), bulk("Cu")]
    path = tmp_path / "bad.xyz"
    with pytest.raises(ValueError, match=r"\(2,\)"):
        write_per_atom(path, structures, {"dH": np.zeros(3)})
    with pytest.raises(ValueError, match="reserved"):
        write_per_atom(path, structures, {"positions": np.zeros(2)})
    with pytest.raises(ValueError, match="identifier"):
        write_per_atom(path, structures, {"delta H": np.zeros(2)})
    with pytest.raises(ValueError, match="real numbers"):
        write_per_atom(path, structures, {"dH": np.array(["a", "b"])})
    assert not path.exists()


def test_module_exports():
    for name in jio.__all__:
        assert hasattr(jio, name)
    assert issubclass(InputError, ValueError)
