"""Host-side file input and output for the command line and for users.

Nothing here touches JAX: structures are read with :mod:`ase.io` (streamed, one frame at a
time), descriptor matrices are numpy arrays in ``.npy`` / ``.npz`` files, and per-atom results are
written as extxyz columns that OVITO or ase can use to colour atoms.

Input sources are strings ``PATH[@SELECTION]``:

============================ ===================================================
``traj.xyz``                 every frame
``traj.xyz@5``               frame 5 (0-based); ``@-1`` is the last frame
``traj.xyz@0:100:2``         Python slice ``start:stop:step``, any part optional
``traj.xyz@::10``            every tenth frame; ``@:`` is every frame
============================ ===================================================

Only a final ``@`` followed by an integer or a slice is a selection; ``run@home/a.xyz`` is a path.
A file whose name itself ends in ``@5`` is read whole as ``name@5@:``.

Every problem a user can fix (missing file, unknown format, unparsable content, a selection with
no frames, a bad descriptor file) raises :class:`InputError`, a :class:`ValueError` whose one-line
message names the file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import ase.io
import ase.io.formats
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = [
    "InputError",
    "MissingInputError",
    "atomic_output",
    "check_writable",
    "is_descriptor_file",
    "iter_structures",
    "load_descriptor_file",
    "parse_source",
    "read_structures",
    "save_descriptors",
    "write_per_atom",
]

DESCRIPTOR_KEY = "descriptors"
DESCRIPTOR_SUFFIXES = (".npy", ".npz")

_INT = r"[+-]?\d+"
_SELECTION = re.compile(
    rf"(?P<index>{_INT})|(?P<start>{_INT})?:(?P<stop>{_INT})?(?::(?P<step>{_INT})?)?"
)
# Names that ase's extxyz reader or writer treats specially; per-atom results must not use them.
_RESERVED_ARRAYS = frozenset({"numbers", "positions", "species", "pos", "Z", "momenta", "masses"})
_ARRAY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: Temporary files of outputs being written (deleted by the command line on SIGINT/SIGTERM).
_PENDING_OUTPUTS: set[str] = set()


class InputError(ValueError):
    """A problem with a user's input file or source specification that the user can fix."""


class MissingInputError(InputError, FileNotFoundError):
    """A missing input file: both an :class:`InputError` and a :class:`FileNotFoundError`."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_source(spec: str) -> tuple[Path, int | slice]:
    """Splits ``'PATH[@SELECTION]'`` into a path and an ase frame index.

    Args:
        spec: a file name, optionally followed by ``@i`` (one frame, negative counts from the end)
            or ``@start:stop:step`` (a Python slice, every part optional).

    Returns:
        ``(path, index)`` where ``index`` is an ``int`` or a ``slice``; ``slice(None)`` (every
        frame) when ``spec`` has no selection.

    Raises:
        InputError: if the path is empty or the slice step is zero.

    Example:
        >>> parse_source("md.xyz@0:100:2")
        (PosixPath('md.xyz'), slice(0, 100, 2))
        >>> parse_source("md.xyz@-1")
        (PosixPath('md.xyz'), -1)
    """
    if not isinstance(spec, str):
        raise TypeError(f"source must be a string 'PATH[@SELECTION]', got {type(spec).__name__}")
    head, at, tail = spec.rpartition("@")
    match = _SELECTION.fullmatch(tail) if at else None
    if match is None:
        path_text, index = spec, slice(None)
    else:
        path_text = head
        if match["index"] is not None:
            index = int(match["index"])
        else:
            start, stop, step = (
                None if match[name] is None else int(match[name])
                for name in ("start", "stop", "step")
            )
            if step == 0:
                raise InputError(f"frame selection step must not be zero in {spec!r}")
            index = slice(start, stop, step)
    if not path_text:
        raise InputError(f"no file name in source {spec!r}")
    return Path(path_text), index


def _format_selection(index: int | slice) -> str:
    if isinstance(index, int):
        return f"@{index}"
    parts = ["" if v is None else str(v) for v in (index.start, index.stop, index.step)]
    return "@" + (":".join(parts) if index.step is not None else ":".join(parts[:2]))


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise MissingInputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a structure file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")


def _resolve_format(path: Path, format: str | None) -> tuple[str, bool]:
    """Returns ``(format name, whether the format holds a single frame)`` or raises InputError."""
    try:
        name = format or ase.io.formats.filetype(str(path), read=True)
        ioformat = ase.io.formats.get_ioformat(name)
    except Exception as exc:  # ase raises several types (UnknownFileTypeError, ValueError, ...)
        what = f"format {format!r}" if format else "the file format"
        raise InputError(f"cannot determine {what} of {path}: {_one_line(exc)}") from exc
    if not ioformat.can_read:
        raise InputError(f"ase cannot read format {name!r} (file {path})")
    return name, ioformat.single


def iter_structures(spec: str | os.PathLike, format: str | None = None) -> Iterator[Atoms]:
    """Streams the selected frames of one structure file as :class:`ase.Atoms`.

    Frames are read one at a time with :func:`ase.io.iread`; a trajectory is never held in memory
    whole. (A negative step, ``@::-1``, reads the file twice and holds the selected frames, since
    not every ase reader handles it.) The file's existence and format are checked when this
    function is called; parse errors and an empty selection surface while iterating.

    Args:
        spec: ``'PATH[@SELECTION]'`` as accepted by :func:`parse_source`, or a
            :class:`os.PathLike`, which is taken literally (every frame).
        format: an ase format name (``'extxyz'``, ``'vasp'``, ``'traj'``, ...); guessed from the
            file name and contents when ``None``.

    Returns:
        An iterator of :class:`ase.Atoms` (positions in Å).

    Raises:
        InputError: if the file is missing (:class:`MissingInputError`), empty, a directory, or
            in a format ase cannot identify or read; while iterating, if ase fails to parse a
            frame or the selection holds no frame.
    """
    if isinstance(spec, os.PathLike):
        path, index = Path(spec), slice(None)
    else:
        path, index = parse_source(spec)
    _check_readable(path)
    fmt, single = _resolve_format(path, format)
    return _stream(path, index, fmt, single)


def _iread(path: Path, index: int | slice, fmt: str) -> Iterator[Atoms]:
    """ase.io.iread, with reader exceptions turned into InputError naming the file."""
    frames = ase.io.iread(str(path), index=index, format=fmt, do_not_split_by_at_sign=True)
    while True:
        try:
            atoms = next(frames)
        except StopIteration:
            return
        except IndexError as exc:
            if isinstance(index, int):  # some readers raise instead of yielding nothing
                return
            raise InputError(f"cannot read {path} as {fmt}: {_one_line(exc)}") from exc
        except Exception as exc:  # readers raise anything from ValueError to AssertionError
            raise InputError(f"cannot read {path} as {fmt}: {_one_line(exc)}") from exc
        yield atoms


def _mixed_signs(index: slice) -> bool:
    """Whether one bound of ``index`` counts from the end and the other from the start."""
    bounds = [b for b in (index.start, index.stop) if b is not None]
    return len(bounds) == 2 and (bounds[0] < 0) != (bounds[1] < 0)


def _stream(path: Path, index: int | slice, fmt: str, single: bool) -> Iterator[Atoms]:
    if single:
        # ase asserts that single-frame formats are read from frame 0 or -1: read the one frame
        # and apply the selection here, so that '@1' is an empty selection rather than a crash.
        wanted = range(1)
        wanted = wanted[index] if isinstance(index, slice) else wanted[index : index + 1 or None]
        frames = _iread(path, slice(None), fmt) if len(wanted) else iter(())
    elif isinstance(index, slice) and index.step is not None and index.step < 0:
        # Not every ase reader gets negative steps right (extxyz stops reading early): count the
        # frames, read the selected range forwards, and yield it reversed. Only the selected
        # frames are held in memory.
        n_frames = sum(1 for _ in _iread(path, slice(None), fmt))
        wanted = range(n_frames)[index]
        forward = slice(wanted[-1], wanted[0] + 1, -wanted.step) if len(wanted) else None
        frames = reversed(list(_iread(path, forward, fmt))) if forward else iter(())
    elif isinstance(index, slice) and _mixed_signs(index):
        # ase's extxyz reader ignores a negative start when the stop is not negative ('@-2:1'
        # read frame 0, '@-5:4' frames 0-3): count the frames and read non-negative bounds.
        n_frames = sum(1 for _ in _iread(path, slice(None), fmt))
        wanted = range(n_frames)[index]
        forward = slice(wanted.start, wanted.stop, wanted.step) if len(wanted) else None
        frames = _iread(path, forward, fmt) if forward else iter(())
    else:
        frames = _iread(path, index, fmt)
    count = 0
    for atoms in frames:
        count += 1
        yield atoms
    if count == 0:
        raise InputError(f"selection {_format_selection(index)} selects no frames of {path}")


def read_structures(specs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Atoms]:
    """Reads the selected frames of several sources into one list, in order.

    Args:
        specs: one source or several, each as accepted by :func:`iter_structures`.

    Returns:
        The concatenated frames as a list of :class:`ase.Atoms`.

    Raises:
        InputError: as :func:`iter_structures`, for the first source that fails.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    structures: list[Atoms] = []
    for spec in specs:
        structures.extend(iter_structures(spec))
    return structures


def is_descriptor_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a descriptor matrix file (``.npy`` or ``.npz``, any case)."""
    return Path(path).suffix.lower() in DESCRIPTOR_SUFFIXES


def load_descriptor_file(path: str | os.PathLike, *, metadata: bool = False):
    """Loads an (n, d) descriptor matrix from ``.npy`` or ``.npz``.

    An ``.npz`` file must hold the key ``'descriptors'`` (as written by :func:`save_descriptors`),
    or exactly one array. Pickled objects are never loaded.

    Args:
        path: the file to read.
        metadata: also return the other arrays of an ``.npz`` file (its provenance: ``k``,
            ``cutoff``, ``species``, ``dtype``, ``sources``, per-row ``row_source``,
            ``row_frame``, ``row_atom``, as written by ``jaxinfo descriptors``).

    Returns:
        A numpy array of shape (n, d), n >= 1 environments of d features (1/Å), with the stored
        floating dtype; with ``metadata=True`` a tuple ``(x, dict)`` of that array and the other
        arrays by name (empty for ``.npy``).

    Raises:
        InputError: if the file is missing (:class:`MissingInputError`), not ``.npy``/``.npz``,
            unreadable, has no suitable key, or the array is not a non-empty, finite, 2-D
            floating-point array (integers are refused: descriptors are real values in 1/Å).
    """
    path = Path(path)
    if not is_descriptor_file(path):
        raise InputError(f"{path} is not a descriptor file (expected .npy or .npz)")
    _check_readable(path)
    # Open the file here: np.load leaks its own handle when a zip archive is corrupt.
    with open(path, "rb") as handle:
        try:
            loaded = np.load(handle, allow_pickle=False)
        except Exception as exc:  # bad magic, truncated data, pickled objects, ...
            raise InputError(f"cannot read {path}: {_one_line(exc)}") from exc
        extra: dict[str, np.ndarray] = {}
        if isinstance(loaded, np.ndarray):
            x = loaded
        else:
            with loaded:
                x = _npz_descriptors(loaded, path)
                if metadata and DESCRIPTOR_KEY in loaded.files:
                    for key in loaded.files:
                        if key != DESCRIPTOR_KEY:
                            with contextlib.suppress(Exception):
                                extra[key] = loaded[key]
    x = _check_descriptor_array(x, path)
    return (x, extra) if metadata else x


def _npz_descriptors(loaded, path: Path) -> np.ndarray:
    keys = list(loaded.files)
    if DESCRIPTOR_KEY in keys:
        key = DESCRIPTOR_KEY
    elif len(keys) == 1:
        key = keys[0]
    else:
        raise InputError(
            f"{path} has no array {DESCRIPTOR_KEY!r} and {len(keys)} others "
            f"({', '.join(keys) or 'none'}); cannot tell which holds the descriptors"
        )
    try:
        return loaded[key]
    except Exception as exc:
        raise InputError(f"cannot read array {key!r} of {path}: {_one_line(exc)}") from exc


def _check_descriptor_array(x: np.ndarray, path: Path) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise InputError(f"{path} does not hold a single array")
    if x.ndim != 2:
        raise InputError(f"descriptors in {path} must be 2-D (n, d), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"descriptors in {path} are empty, shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(
            f"descriptors in {path} must be floating-point numbers (1/Å), got dtype {x.dtype}"
        )
    if not np.all(np.isfinite(x)):
        raise InputError(f"descriptors in {path} contain NaN or infinite values")
    return x


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Checks that an output file may be written.

    Args:
        path: the output file.
        overwrite: whether an existing file may be replaced.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
        IsADirectoryError: if ``path`` is a directory.
        FileNotFoundError: if the parent directory does not exist.
        PermissionError: if the parent directory is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory")
    if path.exists() and not overwrite:
        raise _refuse(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"output directory {parent} does not exist (for {path})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output directory {parent} is not writable (for {path})")
    return path


def _refuse(path: Path) -> FileExistsError:
    return FileExistsError(
        f"refusing to overwrite existing file {path}; pass overwrite=True "
        "(--overwrite on the command line) to replace it"
    )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False, binary: bool = False):
    """Writes an output file atomically: a temporary file in the same directory, renamed at the end.

    Readers (and an interrupted run) never see a partial file: until the ``with`` block ends
    without an exception, ``path`` is untouched; then the complete file takes its place in one
    rename. On an exception the temporary file is deleted. Without ``overwrite`` the final step
    refuses to replace a file that appeared meanwhile.

    Args:
        path: the output file.
        overwrite: whether an existing file may be replaced.
        binary: open the temporary file in binary mode (else text, UTF-8).

    Yields:
        The open file object to write to.

    Raises:
        FileExistsError: if ``path`` exists (or appears meanwhile) and ``overwrite`` is false.
        OSError: as :func:`check_writable` for a missing or read-only directory.

    Example:
        ```python
        with atomic_output("result.json") as handle:
            json.dump(record, handle)
        ```
    """
    path = check_writable(path, overwrite)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    _PENDING_OUTPUTS.add(temporary)
    try:
        kwargs = {} if binary else {"encoding": "utf-8"}
        with os.fdopen(fd, "wb" if binary else "w", **kwargs) as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual mode
        if overwrite:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # fails if path exists: no race with another writer
            except FileExistsError:
                raise _refuse(path) from None
            except OSError:  # no hard links on this file system
                if path.exists():
                    raise _refuse(path) from None
                os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        _PENDING_OUTPUTS.discard(temporary)


def save_descriptors(path: str | os.PathLike, x, *, overwrite: bool = False, **metadata) -> Path:
    """Writes a descriptor matrix and metadata to an ``.npz`` file.

    Args:
        path: the output file; must end in ``.npz``.
        x: array-like of shape (n, d), descriptors in 1/Å (numpy or JAX; dtype is kept).
        overwrite: replace an existing file; otherwise an existing file is an error.
        **metadata: extra arrays stored under their keyword names, e.g. ``k=32``,
            ``cutoff=5.0`` (Å), ``h=0.015`` (1/Å), ``n_atoms=[...]``. Each must convert to a numpy
            array that needs no pickle (numbers, booleans, strings).

    Returns:
        The path written.

    Raises:
        ValueError: if the suffix is not ``.npz``, ``x`` is not 2-D, a metadata key is
            ``'descriptors'``, or a metadata value would need pickling.
        FileExistsError: if the file exists and ``overwrite`` is false.

    Example:
        >>> save_descriptors("x.npz", x, k=32, cutoff=5.0)  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"descriptor output must end in .npz, got {path}")
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"descriptors must be a 2-D array (n, d), got shape {x.shape}")
    if DESCRIPTOR_KEY in metadata:
        raise ValueError(f"metadata key {DESCRIPTOR_KEY!r} is reserved for the descriptor matrix")
    arrays = {DESCRIPTOR_KEY: x}
    for key, value in metadata.items():
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise ValueError(
                f"metadata {key}={value!r} cannot be stored without pickle; "
                "use numbers, booleans or strings"
            )
        arrays[key] = arr
    with atomic_output(path, overwrite, binary=True) as handle:
        np.savez(handle, **arrays)
    return path


def write_per_atom(
    path: str | os.PathLike,
    structures: Atoms | Iterable[Atoms],
    values: Mapping[str, np.ndarray],
    *,
    overwrite: bool = False,
) -> Path:
    """Writes structures to extxyz with per-atom result columns (e.g. δH) for visualisation.

    The flat per-environment arrays are split in structure order, atom order within each
    structure (the order of :func:`jaxinfo.descriptors`), and stored as ``atoms.arrays[name]``,
    so that ``ase.io.read(path, ':')[i].arrays['dH']`` gives structure ``i``'s values and OVITO
    can colour atoms by them. The input structures are not modified; energies and forces of
    single-point calculators (e.g. read from a file) are kept.

    Args:
        path: the output extxyz file.
        structures: one :class:`ase.Atoms` or several, with n_env atoms in total.
        values: column name -> array of shape (n_env,) or (n_env, m) (numbers or booleans).
            Names must be identifiers and must not clash with extxyz's own columns.
        overwrite: replace an existing file; otherwise an existing file is an error.

    Returns:
        The path written.

    Raises:
        ValueError: on a bad column name or an array whose length is not n_env.
        FileExistsError: if the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    structures = [structures] if isinstance(structures, Atoms) else list(structures)
    counts = [len(atoms) for atoms in structures]
    n_env = sum(counts)
    columns: dict[str, np.ndarray] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not _ARRAY_NAME.fullmatch(name):
            raise ValueError(f"per-atom column name {name!r} must be an identifier")
        if name in _RESERVED_ARRAYS:
            raise ValueError(f"per-atom column name {name!r} is reserved by extxyz")
        arr = np.asarray(value)
        if arr.ndim not in (1, 2) or arr.shape[0] != n_env:
            raise ValueError(
                f"per-atom values {name!r} must have shape ({n_env},) or ({n_env}, m) for "
                f"{len(structures)} structures with {n_env} atoms, got {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(
            arr
        ):
            raise ValueError(f"per-atom values {name!r} must be real numbers, got {arr.dtype}")
        columns[name] = arr
    check_writable(path, overwrite)

    offsets = np.cumsum([0, *counts])
    frames = []
    for i, atoms in enumerate(structures):
        frame = atoms.copy()  # Atoms.copy drops the calculator and keeps info and arrays
        for name, arr in columns.items():
            if name in frame.arrays:
                del frame.arrays[name]
            frame.new_array(name, arr[offsets[i] : offsets[i + 1]])
        if isinstance(atoms.calc, SinglePointCalculator):
            # extxyz refuses a key that is both in info and in the calculator's results.
            for key in atoms.calc.results:
                frame.info.pop(key, None)
            frame.calc = SinglePointCalculator(frame, **atoms.calc.results)
        frames.append(frame)
    with atomic_output(path, overwrite) as handle:
        ase.io.write(handle, frames, format="extxyz")
    return path
