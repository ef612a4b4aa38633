"""The shared steps of every verb: inputs -> descriptors, and kernel sums with progress bars.

Structure files are streamed with :func:`jaxinfo.io.iter_structures` and described
``--chunk`` structures at a time, so a trajectory is never held in memory whole; only the
descriptor matrix and a few integers per structure are kept.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import jaxinfo
from jaxinfo import io
from jaxinfo.cli._app import DEFAULT_CUTOFF, DEFAULT_K, CLIError, Context

_STRUCTURE_ERROR = re.compile(r"^structure (\d+): (.*)$", re.DOTALL)
NO_GROUP = "(none)"


@dataclass
class Dataset:
    """Descriptors of a set of inputs and where each row came from.

    Attributes:
        x: (n_env, d) descriptors in the run's dtype.
        specs: the input sources as given.
        kinds: ``"structures"`` or ``"descriptors"`` for each source.
        env_counts: rows contributed by each source.
        n_atoms: atoms of each structure, in order (structure sources only).
        structure_source: source index of each structure.
        structure_frame: frame number of each structure in its file, or ``"#i"``, its
            position in the selection, when the selection counts from the end.
        groups: ``atoms.info[--by]`` of each structure as text (empty without ``--by``).
        labels: for each descriptor source with provenance (``jaxinfo descriptors``), the
            (original source, frame, atom) of each of its rows, as three arrays; else None.
    """

    x: np.ndarray
    specs: list[str]
    kinds: list[str]
    env_counts: list[int]
    n_atoms: list[int] = field(default_factory=list)
    structure_source: list[int] = field(default_factory=list)
    structure_frame: list[int | str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    labels: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = field(default_factory=list)

    @property
    def n_env(self) -> int:
        """Number of environments (rows)."""
        return int(self.x.shape[0])

    @property
    def all_structures(self) -> bool:
        """Whether every source is a structure file (per-structure bookkeeping is complete)."""
        return all(kind == "structures" for kind in self.kinds)

    def env_source(self) -> np.ndarray:
        """(n_env,) source index of each row."""
        return np.repeat(np.arange(len(self.specs)), self.env_counts)

    def env_group(self) -> tuple[list[str], np.ndarray]:
        """Distinct ``--by`` values (first-seen order) and the (n_env,) group index of each row."""
        names = list(dict.fromkeys(self.groups))
        code = {name: i for i, name in enumerate(names)}
        per_structure = np.asarray([code[g] for g in self.groups], dtype=np.int64)
        return names, np.repeat(per_structure, self.n_atoms)

    def per_structure(self) -> list[np.ndarray]:
        """The rows of each structure, as a list of (n_i, d) arrays."""
        offsets = np.cumsum([0, *self.n_atoms])
        return [self.x[offsets[i] : offsets[i + 1]] for i in range(len(self.n_atoms))]

    def locate(self, rows) -> list[tuple[str, str, str]]:
        """(source, frame, atom) of each row index, as text; for rows of descriptor files the
        frame is '-' and the atom is the row number in that file."""
        env_source = self.env_source()
        source_starts = np.cumsum([0, *self.env_counts])
        structure_source = np.asarray(self.structure_source, dtype=np.int64)
        n_atoms = np.asarray(self.n_atoms, dtype=np.int64)
        out = []
        for row in np.asarray(rows).tolist():
            source = int(env_source[row])
            local = int(row - source_starts[source])
            spec = self.specs[source]
            if self.kinds[source] != "structures":
                labels = self.labels[source] if source < len(self.labels) else None
                if labels is None:
                    out.append((spec, "-", f"row {local}"))
                else:
                    origin, frame, atom = (column[local] for column in labels)
                    frame_text = "-" if int(frame) < 0 else str(int(frame))
                    out.append((str(origin), frame_text, str(int(atom))))
                continue
            members = np.flatnonzero(structure_source == source)
            starts = np.cumsum([0, *n_atoms[members]])
            i = int(np.searchsorted(starts, local, side="right") - 1)
            frame = self.structure_frame[int(members[i])]
            out.append((spec, str(frame), str(local - int(starts[i]))))
        return out

    def frames(self) -> list[tuple[str, str, int, int]]:
        """Contiguous row ranges of each frame: (source, frame, start, stop) in row order.

        Structure files give one range per structure; descriptor files with provenance one per
        original frame; descriptor files without it one range for the whole file (frame '-').
        """
        out: list[tuple[str, str, int, int]] = []
        source_starts = np.cumsum([0, *self.env_counts])
        per_source: dict[int, list[int]] = {}
        for i, source in enumerate(self.structure_source):
            per_source.setdefault(source, []).append(i)
        for source, spec in enumerate(self.specs):
            start = int(source_starts[source])
            if self.kinds[source] == "structures":
                for i in per_source.get(source, []):
                    stop = start + self.n_atoms[i]
                    out.append((spec, str(self.structure_frame[i]), start, stop))
                    start = stop
                continue
            labels = self.labels[source] if source < len(self.labels) else None
            stop_all = int(source_starts[source + 1])
            if labels is None:
                out.append((spec, "-", start, stop_all))
                continue
            origin, frame = labels[0], labels[1]
            change = np.flatnonzero((origin[1:] != origin[:-1]) | (frame[1:] != frame[:-1])) + 1
            bounds = [0, *change.tolist(), len(frame)]
            for a, b in itertools.pairwise(bounds):
                frame_text = "-" if int(frame[a]) < 0 else str(int(frame[a]))
                out.append((str(origin[a]), frame_text, start + a, start + b))
        return out


def frame_numbering(index: int | slice):
    """Maps a position in the selection to the frame number in the file, when it is known."""
    if isinstance(index, int):
        return (lambda i: index) if index >= 0 else (lambda i: None)
    start, step = index.start, index.step
    if (start is None or start >= 0) and (step is None or step > 0):
        return lambda i: (start or 0) + i * (step or 1)
    return lambda i: None


def resolve_specs(ctx: Context, specs: Sequence[str], *, what: str = "input") -> list[str]:
    """The input sources of a verb: the positional files, or the bundled dataset (--example)."""
    specs = list(specs or [])
    if getattr(ctx.args, "example", False):
        if specs:
            raise CLIError("give input files or --example, not both")
        from jaxinfo.datasets import example_path

        return [str(example_path())]
    if not specs:
        raise CLIError(
            f"no {what} files given; name one or more, or use --example for the bundled Cu dataset"
        )
    return specs


def load_dataset(
    ctx: Context,
    specs: Sequence[str],
    *,
    role: str = "input",
    group_by: str | None = None,
) -> Dataset:
    """Reads every source and returns its descriptors (rows in input order).

    Structure files are streamed and described ``--chunk`` structures at a time; descriptor
    files are loaded whole. All sources must give rows of the same width.

    Raises:
        InputError: a missing or unreadable file, an unknown format, an empty selection, a
            structure the descriptor rejects (naming file and frame), or widths that differ.
    """
    args = ctx.args
    k, cutoff, dtype = args.k, args.cutoff, args.dtype
    ctx.parameters.update(k=k, cutoff=cutoff, dtype=dtype)
    if getattr(args, "provenance", None):
        ctx.parameters["descriptor_files"] = args.provenance
    width = 2 * k - 1
    parts: list[np.ndarray] = []
    data = Dataset(x=np.zeros((0, width), dtype=dtype), specs=[], kinds=[], env_counts=[])
    record = ctx.inputs.setdefault(role, [])
    first: tuple[str, int] | None = None
    for spec in specs:
        path, index = io.parse_source(spec)
        if io.is_descriptor_file(path):
            if group_by is not None:
                raise CLIError(f"--by needs structure files; {spec} is a descriptor file")
            with ctx.timed("read"):
                x, labels = _load_descriptor_rows(path, index, spec)
                x = x.astype(dtype, copy=False)
            if labels is None and getattr(args, "k_given", False) and x.shape[1] != 2 * k - 1:
                raise io.InputError(
                    f"-k {k} gives descriptors of width {2 * k - 1}, but {spec} has "
                    f"{x.shape[1]} columns"
                )
            kind, n_structures = "descriptors", None
        else:
            labels = None
            x, n_structures = _describe_file(ctx, data, spec, path, index, group_by, role)
            kind = "structures"
        if first is None:
            first = (spec, x.shape[1])
        elif x.shape[1] != first[1]:
            raise io.InputError(_width_message(spec, x.shape[1], first[0], first[1]))
        parts.append(x)
        data.specs.append(spec)
        data.kinds.append(kind)
        data.labels.append(labels)
        data.env_counts.append(int(x.shape[0]))
        entry = {"source": spec, "kind": kind, "n_env": int(x.shape[0]), "width": int(x.shape[1])}
        if n_structures is not None:
            entry["n_structures"] = n_structures
        record.append(entry)
    if not parts:
        raise CLIError(f"no {role} files given")
    data.x = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    return data


def _width_message(spec, width, other, other_width) -> str:
    return (
        f"descriptor widths differ: {spec} has {width} columns, {other} has {other_width} "
        "(descriptors made with different k, or species-resolved); use the same -k for all"
    )


def check_same_width(test: Dataset, reference: Dataset) -> None:
    """Raises InputError naming the files when test and reference rows differ in width."""
    if test.x.shape[1] != reference.x.shape[1]:
        raise io.InputError(
            _width_message(test.specs[0], test.x.shape[1], reference.specs[0], reference.x.shape[1])
        )


def _load_descriptor_rows(path: Path, index, spec: str):
    """The selected rows of a descriptor file and, when it has provenance, their labels."""
    x, meta = io.load_descriptor_file(path, metadata=True)
    labels = _row_labels(meta, x.shape[0])
    if isinstance(index, int):
        if not -x.shape[0] <= index < x.shape[0]:
            raise io.InputError(f"selection @{index} is outside the {x.shape[0]} rows of {path}")
        index = slice(index, index + 1 or None)
    x = x[index]
    if x.shape[0] == 0:
        raise io.InputError(f"selection in {spec!r} selects no rows of {path}")
    if labels is not None:
        labels = tuple(column[index] for column in labels)
    return x, labels


def _row_labels(meta: dict, n_rows: int):
    """(source text, frame, atom) per row from the provenance arrays, or None."""
    names = ("sources", "row_source", "row_frame", "row_atom")
    if not all(name in meta for name in names):
        return None
    sources = np.asarray(meta["sources"]).astype(str).reshape(-1)
    row_source = np.asarray(meta["row_source"]).reshape(-1)
    if row_source.shape[0] != n_rows or sources.size == 0:
        return None
    if row_source.min() < 0 or row_source.max() >= sources.size:
        return None
    frame = np.asarray(meta["row_frame"]).reshape(-1)
    atom = np.asarray(meta["row_atom"]).reshape(-1)
    if frame.shape[0] != n_rows or atom.shape[0] != n_rows:
        return None
    return sources[row_source], frame.astype(np.int64), atom.astype(np.int64)


#: Provenance keys compared between descriptor files and against -k/--cutoff.
_PROVENANCE = ("k", "cutoff", "species")


def _read_provenance(path: Path) -> dict | None:
    """k, cutoff and species mode stored in an .npz descriptor file, or None when absent."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as loaded:
            if "k" not in loaded.files or "cutoff" not in loaded.files:
                return None
            species = str(loaded["species"]) if "species" in loaded.files else "none"
            return {"k": int(loaded["k"]), "cutoff": float(loaded["cutoff"]), "species": species}
    except Exception:  # unreadable files are reported when they are loaded
        return None


def reconcile_provenance(args, specs: Sequence[str]) -> None:
    """Sets ``args.k``/``args.cutoff`` and refuses incompatible descriptor files.

    Descriptor files written by ``jaxinfo descriptors`` record k, cutoff and species mode. All
    of them must agree; -k/--cutoff given on the command line must agree with them; without
    -k/--cutoff the files' values are used (also for structure inputs of the same run).

    Raises:
        CLIError: naming the files or the option that disagree.
    """
    args.k_given = args.k is not None
    args.cutoff_given = args.cutoff is not None
    found: list[tuple[str, dict]] = []
    for spec in specs:
        path, _ = io.parse_source(spec)
        if io.is_descriptor_file(path):
            meta = _read_provenance(path)
            if meta is not None:
                found.append((spec, meta))
    if found:
        first_spec, first = found[0]
        for spec, meta in found[1:]:
            for key in _PROVENANCE:
                if not _same(meta[key], first[key]):
                    raise CLIError(
                        f"descriptor files made with different {key}: {first_spec} has "
                        f"{key}={first[key]}, {spec} has {key}={meta[key]}; recompute them "
                        "with the same parameters"
                    )
        for key, given in (("k", args.k), ("cutoff", args.cutoff)):
            if given is not None and not _same(given, first[key]):
                option = "-k" if key == "k" else "--cutoff"
                raise CLIError(
                    f"{option} {given} contradicts {first_spec}, made with {key}={first[key]}; "
                    f"drop {option} or recompute the descriptors"
                )
        if first["species"] != "none" and any(
            not io.is_descriptor_file(io.parse_source(spec)[0]) for spec in specs
        ):
            raise CLIError(
                f"{first_spec} holds species-resolved descriptors ({first['species']}); the "
                "command line computes plain ones for structure files: do not mix them"
            )
        args.k = first["k"] if args.k is None else args.k
        args.cutoff = first["cutoff"] if args.cutoff is None else args.cutoff
        args.provenance = [{"source": spec, **meta} for spec, meta in found]
    if args.k is None:
        args.k = DEFAULT_K
    if args.cutoff is None:
        args.cutoff = DEFAULT_CUTOFF


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0))


def _describe_file(ctx, data: Dataset, spec, path, index, group_by, role):
    """Streams one structure file and returns its (n_env, 2k-1) descriptors."""
    args = ctx.args
    frame_of = frame_numbering(index)
    source = len(data.specs)
    frames = io.iter_structures(spec, format=getattr(args, "format", None))
    parts: list[np.ndarray] = []
    chunk: list = []
    position = 0

    def flush():
        if not chunk:
            return
        with ctx.timed("descriptors"):
            parts.append(_describe_chunk(chunk, args, spec, frame_of, position - len(chunk)))
        chunk.clear()

    with ctx.progress(desc=f"{role} {path.name}", unit=" frames") as bar:
        iterator = iter(frames)
        while True:
            with ctx.timed("read"):
                atoms = next(iterator, None)
            if atoms is None:
                break
            frame = frame_of(position)
            if len(atoms) and bool(np.all(atoms.pbc)):
                volume = abs(float(np.linalg.det(atoms.cell.array)))
                if volume > 0:
                    ctx.volumes.append(volume / len(atoms))
            data.n_atoms.append(len(atoms))
            data.structure_source.append(source)
            data.structure_frame.append(frame if frame is not None else f"#{position}")
            if group_by is not None:
                value = atoms.info.get(group_by)
                data.groups.append(NO_GROUP if value is None else str(value))
            chunk.append(atoms)
            position += 1
            bar.update()
            if len(chunk) >= args.chunk:
                flush()
        flush()
    return np.concatenate(parts, axis=0), position


def _describe_chunk(chunk, args, spec, frame_of, first_position) -> np.ndarray:
    try:
        return np.asarray(jaxinfo.descriptors(chunk, args.k, args.cutoff, dtype=args.dtype))
    except ValueError as error:
        message = str(error)
        match = _STRUCTURE_ERROR.match(message)
        if match is None:
            raise io.InputError(f"{spec}: {message}") from error
        position = first_position + int(match[1])
        frame = frame_of(position)
        where = f"frame {frame}" if frame is not None else f"frame #{position} of the selection"
        raise io.InputError(f"{spec}, {where}: {match[2]}") from error


def iter_selected_structures(ctx: Context, specs: Sequence[str]) -> Iterator:
    """Streams the structures of several sources again, in order (for writing results)."""
    fmt = getattr(ctx.args, "format", None)
    for spec in specs:
        yield from io.iter_structures(spec, format=fmt)


# --------------------------------------------------------------------------------------------
# Kernel sums


def delta_entropy(ctx: Context, y, x, *, desc: str = "kernel sums", progress: bool = True):
    """δH(y | X) with a progress bar over query rows; (M,) or (M, n_h) numpy array.

    Queries are split into pieces of 8 kernel blocks; each row's value does not depend on the
    split (the reference blocks are the same), so the result equals
    :func:`jaxinfo.delta_entropy` on the whole set.
    """
    args = ctx.args
    ctx.parameters.update(h=ctx.h, block_size=args.block_size)
    step = 8 * args.block_size
    n = y.shape[0]
    starts = range(0, n, step)
    parts = []
    bar = ctx.progress(total=n, desc=desc, unit="env", enabled=progress)
    with bar, ctx.timed("kernel_sums"):
        for start in starts:
            stop = min(start + step, n)
            part = jaxinfo.delta_entropy(
                y[start:stop], x, ctx.h, block_size=args.block_size, mesh=ctx.mesh
            )
            parts.append(np.asarray(part))
            bar.update(stop - start)
    return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def entropy_diversity(delta):
    """(H, D, log N) from the self-δH of a set: H = log N + mean δH, D = logsumexp δH.

    The identities behind :func:`jaxinfo.entropy` and :func:`jaxinfo.diversity`, evaluated on
    the host in float64 (a few thousand numbers: compiling XLA programs for them would cost more
    than the sums) and returned in the dtype of ``delta``.
    """
    d = np.asarray(delta)
    wide = d.astype(np.float64)
    n = wide.shape[0]
    h_value = np.log(n) + wide.mean(axis=0)
    top = wide.max(axis=0)
    d_value = top + np.log(np.exp(wide - top).sum(axis=0))
    return h_value.astype(d.dtype), d_value.astype(d.dtype), float(np.log(n))


def self_entropy(ctx: Context, x, *, desc: str = "kernel sums", progress: bool = True):
    """(H, D, log N, δH) of one descriptor set against itself."""
    delta = delta_entropy(ctx, x, x, desc=desc, progress=progress)
    h_value, d_value, log_n = entropy_diversity(delta)
    return h_value, d_value, log_n, delta
