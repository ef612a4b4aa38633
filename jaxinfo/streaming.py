"""Reference sets larger than memory: descriptor files read block by block.

A :class:`DescriptorSource` stands for an (N, d) descriptor set kept on disk: a ``.npy`` file
(memory-mapped with ``np.load(mmap_mode="r")``), an entry of an ``.npz`` archive (memory-mapped
when stored uncompressed, as ``np.savez`` writes it; decompressed as a stream when written by
``np.savez_compressed``), an array already in memory (``np.memmap`` included), or a list of any
of these stacked along the rows. Kernel sums against it are computed one block of
``block_rows`` references at a time and combined with a running ``logaddexp``, so the memory
held is one block (``block_rows * d`` values) plus the queries, whatever N is:

    log sum_j K(y, x_j) = logaddexp over blocks b of log sum_{j in b} K(y, x_j).

Every block goes through :func:`jaxinfo.log_kernel_sums` (the last block is padded with rows of
weight zero, so all blocks share one compiled program).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zipfile
from collections.abc import Iterator, Sequence

import numpy as np

from jaxinfo.kernels import DEFAULT_BLOCK_SIZE, log_kernel_sums

__all__ = [
    "DEFAULT_BLOCK_ROWS",
    "DescriptorSource",
    "delta_entropy_streamed",
    "open_source",
    "streamed_log_kernel_sums",
]

#: References per block read from disk: 65536 rows of 63 float64 values are 33 MB.
DEFAULT_BLOCK_ROWS = 65536


# --------------------------------------------------------------------------------------------
# Parts: one array-like each (in memory, memory-mapped, or a compressed stream)


class _StreamPart:
    """A C-ordered array inside a compressed ``.npz`` entry, readable front to back only."""

    def __init__(self, path: str, key: str, shape, dtype):
        self.path, self.key, self.shape, self.dtype = path, key, tuple(shape), np.dtype(dtype)

    def _open(self):
        archive = zipfile.ZipFile(self.path)
        handle = archive.open(self.key)
        version = np.lib.format.read_magic(handle)
        _read_header(handle, version)
        return archive, handle

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """Consecutive (<= rows, d) pieces, decompressed one at a time."""
        archive, handle = self._open()
        row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:]))
        try:
            for start in range(0, self.shape[0], rows):
                n = min(rows, self.shape[0] - start)
                raw = handle.read(n * row_bytes)
                yield np.frombuffer(raw, dtype=self.dtype).reshape(n, *self.shape[1:])
        finally:
            handle.close()
            archive.close()


def _read_header(handle, version):
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def _npz_part(path: str, key: str | None):
    """Memory map of an uncompressed ``.npz`` entry, or a stream over a compressed one."""
    with zipfile.ZipFile(path) as archive:
        names = [name for name in archive.namelist() if name.endswith(".npy")]
        if key is None:
            if len(names) != 1:
                keys = ", ".join(name[:-4] for name in names)
                raise ValueError(
                    f"{path} holds {len(names)} arrays ({keys}); name one as 'file.npz:KEY'"
                )
            name = names[0]
        else:
            name = key if key.endswith(".npy") else f"{key}.npy"
            if name not in names:
                keys = ", ".join(n[:-4] for n in names)
                raise ValueError(f"{path} has no array {key!r} (it holds: {keys})")
        info = archive.getinfo(name)
        with archive.open(name) as handle:
            shape, fortran, dtype = _read_header(handle, np.lib.format.read_magic(handle))
    if info.compress_type != zipfile.ZIP_STORED:
        if fortran and len(shape) > 1:
            raise ValueError(
                f"{path}:{name[:-4]} is compressed and Fortran-ordered: save it in C order"
            )
        return _StreamPart(path, name, shape, dtype)
    with open(path, "rb") as raw:
        # The entry's data follow its local file header (30 bytes, then the name and extra field).
        raw.seek(info.header_offset)
        local = raw.read(30)
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        raw.seek(info.header_offset + 30 + name_length + extra_length)
        _read_header(raw, np.lib.format.read_magic(raw))
        offset = raw.tell()
    return np.memmap(
        path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )


def _open_part(item):
    if isinstance(item, DescriptorSource):
        return list(item.parts)
    if isinstance(item, str | os.PathLike):
        text = os.fspath(item)
        key = None
        if not os.path.exists(text) and ".npz:" in text:
            text, key = text.rsplit(":", 1)
        if not os.path.exists(text):
            raise ValueError(f"descriptor file not found: {text}")
        if text.endswith(".npz"):
            return [_npz_part(text, key)]
        if text.endswith(".npy"):
            return [np.load(text, mmap_mode="r")]
        raise ValueError(f"descriptor files must be .npy or .npz, got {text}")
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str | os.PathLike):
        return [_npz_part(os.fspath(item[0]), item[1])]
    if isinstance(item, np.ndarray):
        return [item]
    raise ValueError(
        f"a descriptor source must be a .npy/.npz path, an array or a list of them, "
        f"got {type(item).__name__}"
    )


# --------------------------------------------------------------------------------------------
# Source


@dataclasses.dataclass(frozen=True)
class DescriptorSource:
    """An (N, d) descriptor set made of parts stacked along the rows, read block by block.

    Build it with :func:`open_source`. Nothing is read until :meth:`blocks` or :meth:`take`.

    Attributes:
        parts: the arrays (memory maps, in-memory arrays or compressed-stream readers).
        n_rows: total number of rows N.
        width: descriptor width d.
        dtype: numpy dtype of the stored values (all parts share it after reading).
    """

    parts: tuple
    n_rows: int
    width: int
    dtype: np.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, d)``."""
        return (self.n_rows, self.width)

    def blocks(self, block_rows: int = DEFAULT_BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """Yields ``(first_row, rows)`` with (<= block_rows, d) in-memory arrays, in order.

        Blocks do not straddle parts; each holds ``block_rows`` rows except a part's last.
        A ``.npy`` file (or stored ``.npz`` entry) is read with plain file reads into one
        buffer that the next block overwrites (so resident memory stays at one block): copy a
        block to keep it.
        """
        block_rows = _check_block_rows(block_rows)
        start = 0
        for part in self.parts:
            if isinstance(part, _StreamPart):
                pieces = part.chunks(block_rows)
            elif _readable_map(part):
                pieces = _read_blocks(part, block_rows)
            else:
                pieces = (part[i : i + block_rows] for i in range(0, part.shape[0], block_rows))
            for piece in pieces:
                yield start, np.asarray(piece)
                start += piece.shape[0]

    def n_blocks(self, block_rows: int = DEFAULT_BLOCK_ROWS) -> int:
        """Number of blocks :meth:`blocks` yields."""
        return sum(-(-part.shape[0] // block_rows) for part in self.parts)

    def take(self, indices, block_rows: int = DEFAULT_BLOCK_ROWS) -> np.ndarray:
        """Rows at ``indices`` (any order, no repeats needed), as an (len(indices), d) array.

        Memory-mapped parts read only the pages holding those rows; a compressed part is read
        through once.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1:
            raise ValueError("indices must be a 1-D integer array")
        if indices.size and (indices.min() < 0 or indices.max() >= self.n_rows):
            raise ValueError(f"row indices must lie in [0, {self.n_rows})")
        out = np.empty((indices.size, self.width), self.dtype)
        order = np.argsort(indices, kind="stable")
        sorted_idx = indices[order]
        start = 0
        for part in self.parts:
            stop = start + part.shape[0]
            lo, hi = np.searchsorted(sorted_idx, [start, stop])
            if hi > lo:
                local = sorted_idx[lo:hi] - start
                if isinstance(part, _StreamPart):
                    rows = np.empty((hi - lo, self.width), self.dtype)
                    offset = 0
                    for piece in part.chunks(block_rows):
                        a, b = np.searchsorted(local, [offset, offset + piece.shape[0]])
                        rows[a:b] = piece[local[a:b] - offset]
                        offset += piece.shape[0]
                else:
                    rows = np.asarray(part[local])
                out[order[lo:hi]] = rows
            start = stop
        return out


def _readable_map(part) -> bool:
    """A whole C-ordered file mapping, whose blocks can be read with plain file reads."""
    return (
        isinstance(part, np.memmap)
        and isinstance(getattr(part, "filename", None), str)
        and part.flags.c_contiguous
        and part.base is not None
        and getattr(part, "offset", None) is not None
        and part.ndim == 2
    )


def _read_blocks(part: np.memmap, block_rows: int) -> Iterator[np.ndarray]:
    """Blocks of a memory-mapped file read with ``readinto`` into one reused buffer, so the
    pages read are not kept mapped (resident memory stays at one block, not the file)."""
    row_bytes = part.dtype.itemsize * part.shape[1]
    buffer = np.empty((min(block_rows, part.shape[0]), part.shape[1]), part.dtype)
    with open(part.filename, "rb", buffering=0) as handle:
        handle.seek(part.offset)
        for start in range(0, part.shape[0], block_rows):
            n = min(block_rows, part.shape[0] - start)
            view = memoryview(buffer[:n].reshape(-1).view(np.uint8))
            got = 0
            while got < n * row_bytes:
                read = handle.readinto(view[got:])
                if not read:
                    raise ValueError(f"{part.filename} ends before its {part.shape[0]} rows")
                got += read
            yield buffer[:n]


def _check_block_rows(block_rows) -> int:
    if isinstance(block_rows, bool) or not isinstance(block_rows, int | np.integer):
        raise ValueError(f"block_rows must be an integer >= 1, got {block_rows!r}")
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    return int(block_rows)


def open_source(source) -> DescriptorSource:
    """Opens descriptor files (or arrays) as one row-stacked set, without reading them.

    Args:
        source: a path to a ``.npy`` file (memory-mapped), to a ``.npz`` archive with one array
            (or ``"file.npz:KEY"``, or a tuple ``(path, key)`` for one of several), an
            (n, d) array (``np.memmap`` included), a :class:`DescriptorSource`, or a list of
            these, stacked along the rows in order.

    Returns:
        A :class:`DescriptorSource` of shape (N, d), N the total number of rows.

    Raises:
        ValueError: for missing files, unknown formats, parts that are not 2-D, empty, of
            different widths or non-numeric.

    Example:
        >>> import numpy as np, jaxinfo, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, np.zeros((10, 4)))
        >>> jaxinfo.open_source([path, path]).shape
        (20, 4)
    """
    items = (
        list(source)
        if isinstance(source, list | Sequence)
        and not isinstance(source, str | bytes | tuple | np.ndarray)
        else [source]
    )
    if not items:
        raise ValueError("the descriptor source is an empty list")
    parts = [part for item in items for part in _open_part(item)]
    widths, dtypes = set(), set()
    for part in parts:
        if len(part.shape) != 2:
            raise ValueError(f"descriptor arrays must be 2-D (n, d), got shape {part.shape}")
        if part.shape[0] == 0 or part.shape[1] == 0:
            raise ValueError(f"a descriptor array is empty (shape {part.shape})")
        if not (np.issubdtype(part.dtype, np.floating) or np.issubdtype(part.dtype, np.integer)):
            raise ValueError(f"descriptor arrays must be numeric, got dtype {part.dtype}")
        widths.add(part.shape[1])
        dtypes.add(np.dtype(part.dtype))
    if len(widths) > 1:
        raise ValueError(f"descriptor files have different widths: {sorted(widths)}")
    dtype = np.result_type(*dtypes)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    n_rows = sum(int(part.shape[0]) for part in parts)
    return DescriptorSource(tuple(parts), n_rows, widths.pop(), np.dtype(dtype))


# --------------------------------------------------------------------------------------------
# Streamed kernel sums


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="block", leave=False)


def streamed_log_kernel_sums(
    y,
    source,
    h,
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """``log sum_j K(y_i, x_j)`` over a reference set read from disk one block at a time.

    Args:
        y: (M, d) query descriptors (1/Angstrom), in memory.
        source: the (N, d) references: anything :func:`open_source` accepts.
        h: bandwidth (1/Angstrom), a scalar or a 1-D array of n_h bandwidths.
        block_rows: references read and summed per step; memory ~ block_rows * d values.
        block_size: kernel block (as in :func:`jaxinfo.log_kernel_sums`).
        progress: draw a tqdm progress bar (on stderr) over the blocks.

    Returns:
        (M,) for scalar h, (M, n_h) for 1-D h; numpy, in the working floating dtype (float32,
        or float64 with JAX x64 enabled). Equal to ``log_kernel_sums(y, x, h)`` with the whole
        set in memory, up to round-off of the block combination.

    Raises:
        ValueError: for bad queries, sources, bandwidths, block sizes, or a block holding NaN
            or inf (the message gives the global row).
    """
    source = source if isinstance(source, DescriptorSource) else open_source(source)
    block_rows = _check_block_rows(block_rows)
    y = np.asarray(y) if not hasattr(y, "shape") else y
    if np.ndim(y) == 2 and y.shape[1] != source.width:
        raise ValueError(
            f"descriptor widths differ: {y.shape[1]} columns against {source.width} in the source"
        )
    total = None
    target = min(block_rows, source.n_rows)
    with _progress(source.n_blocks(block_rows), progress, "reference blocks") as bar:
        for start, rows in source.blocks(block_rows):
            finite = np.isfinite(rows).all(axis=1)
            if not finite.all():
                row = start + int(np.argmin(finite))
                raise ValueError(f"the reference source contains NaN or inf (row {row})")
            n = rows.shape[0]
            weights = None
            if n < target:
                # Pad a short block to the full size with zero-weight rows: one compilation.
                rows = np.concatenate([rows, np.repeat(rows[-1:], target - n, axis=0)])
                weights = np.full(target, -np.inf)
                weights[:n] = 0.0
            sums = np.asarray(
                log_kernel_sums(y, rows, h, log_weights=weights, block_size=block_size)
            )
            total = sums if total is None else np.logaddexp(total, sums)
            bar.update(1)
    return total


def delta_entropy_streamed(
    y,
    source,
    h=0.015,
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Differential entropy dH(y | X) = -log sum_j K(y, x_j), X read from disk block by block.

    The out-of-core counterpart of :func:`jaxinfo.delta_entropy`: the references may be far
    larger than memory (a 10^7-row ``.npy`` is memory-mapped and read ``block_rows`` rows at a
    time); the result is exact, not approximated.

    Args:
        y: (M, d) test descriptors (1/Angstrom), in memory.
        source: (N, d) references: a ``.npy``/``.npz`` path, ``"file.npz:KEY"``, an array, a
            :class:`DescriptorSource` or a list of these (see :func:`open_source`).
        h: bandwidth in 1/Angstrom, scalar or 1-D array.
        block_rows: references per block read from disk (memory ~ block_rows * d values).
        block_size: kernel block (as in :func:`jaxinfo.log_kernel_sums`).
        progress: draw a tqdm progress bar over the blocks.

    Returns:
        (M,) for scalar h, (M, n_h) for 1-D h, in nats.

    Example:
        >>> import numpy as np, jaxinfo, tempfile, os
        >>> x = np.random.default_rng(0).normal(scale=0.01, size=(3000, 8))
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, x)
        >>> dh = jaxinfo.delta_entropy_streamed(x[:5], path, h=0.015, block_rows=1000)
        >>> bool(np.allclose(dh, jaxinfo.delta_entropy(x[:5], x, h=0.015), atol=1e-4))
        True
    """
    return -streamed_log_kernel_sums(
        y, source, h, block_rows=block_rows, block_size=block_size, progress=progress
    )
