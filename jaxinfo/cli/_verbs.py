"""The verbs of the ``jaxinfo`` command, one function each.

To add a verb: write ``def my_verb(args, ctx) -> Report`` whose docstring is its ``--help``
description, decorate it with ``@verb("name", help=..., options=(...), outputs=(...))`` choosing
the shared option groups of :mod:`jaxinfo.cli._app`, and load inputs with
:func:`~jaxinfo.cli._data.load_dataset`. Errors the user can fix are ``ValueError`` (including
:class:`jaxinfo.io.InputError`) or :class:`~jaxinfo.cli._app.CLIError`; :func:`main` turns them
into one line and exit status 2.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

import jaxinfo
from jaxinfo import io
from jaxinfo.cli._app import (
    DEFAULT_EPS,
    CLIError,
    Report,
    Table,
    _finite_float,
    _fractions,
    _positive_float,
    _positive_int,
    add_descriptor_options,
    add_extxyz_output,
    add_format_option,
    add_inputs,
    add_json_output,
    add_kernel_options,
    add_plot_output,
    add_reference,
    pyplot,
    save_figure,
    verb,
)
from jaxinfo.cli._data import (
    check_same_width,
    delta_entropy,
    frame_numbering,
    iter_selected_structures,
    load_dataset,
    resolve_specs,
    self_entropy,
)


def _value(array, i: int | None = None) -> float:
    """A float from a scalar array, or entry i of a 1-D one."""
    array = np.asarray(array)
    return float(array) if array.ndim == 0 else float(array[i or 0])


def _per_h(array):
    """JSON form: a float for one bandwidth, a list for several (as the Python API)."""
    array = np.asarray(array)
    return float(array) if array.ndim == 0 else [float(v) for v in array]


def _columns(delta: np.ndarray) -> np.ndarray:
    """(M,) or (M, n_h) -> (M, n_h)."""
    return delta[:, None] if delta.ndim == 1 else delta


def _f(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _h(value: float) -> str:
    return f"{value:g}"


def _eps_option(parser):
    parser.add_argument(
        "--eps",
        type=_finite_float,
        default=DEFAULT_EPS,
        metavar="EPS",
        help=f"δH threshold in nats: δH < EPS counts as covered (default {DEFAULT_EPS:g})",
    )


def _sampling_options(parser):
    group = parser.add_argument_group("sampled entropy (large datasets)")
    group.add_argument(
        "--sample",
        type=_positive_int,
        metavar="N",
        help="estimate H from N sampled environments, each summed exactly over all (O(N·n_env)); "
        "prints H ± standard error",
    )
    group.add_argument(
        "--stderr",
        type=_positive_float,
        metavar="SE",
        help="sample environments until the standard error of H is at most SE nats",
    )
    group.add_argument(
        "--sample-seed", type=int, default=0, metavar="S", help="seed of the sample (default 0)"
    )


# --------------------------------------------------------------------------------------------
# entropy


@verb(
    "entropy",
    help="information entropy H, diversity D and log N of a dataset",
    options=(
        functools.partial(add_inputs, group_by=True),
        add_descriptor_options,
        add_kernel_options,
        _sampling_options,
        add_json_output,
    ),
    outputs=("output",),
    epilog=(
        "examples:\n"
        "  jaxinfo entropy --example                  # bundled Cu data, one row per label\n"
        "  jaxinfo entropy md.xyz@::10 -b 0.01,0.015,0.02 -o entropy.json\n"
        "  jaxinfo entropy train.xyz --by config_type\n"
        "  jaxinfo entropy big.xyz --stderr 0.01       # sampled H ± standard error"
    ),
)
def entropy_verb(args, ctx) -> Report:
    """Information entropy H (nats), diversity D and the maximum log N of a dataset.

    H = log N - mean_i log sum_j K(x_i, x_j) measures how much distinct information the
    environments hold (0 when they are all alike, log N when they are all different). With
    several inputs there is one row per input plus one for all of them; with --by KEY one row per
    value of atoms.info[KEY]. With --example the bundled Cu dataset is used, grouped by its
    'label' (bulk at four temperatures, liquid, surfaces).
    """
    specs = resolve_specs(ctx, args.inputs)
    group_by = args.by or ("label" if args.example else None)
    ctx.parameters["example"] = bool(args.example)
    ctx.parameters["group_by"] = group_by
    data = load_dataset(ctx, specs, group_by=group_by)

    groups: list[tuple[str, np.ndarray | None]] = []
    if group_by is not None:
        names, codes = data.env_group()
        groups = [(name, codes == i) for i, name in enumerate(names)]
    elif len(specs) > 1:
        sources = data.env_source()
        groups = [(spec, sources == i) for i, spec in enumerate(specs)]
    if len(groups) == 1:
        groups = []
    groups.append(("all", None))

    bandwidths = ctx.bandwidths
    if args.sample or args.stderr:
        return _sampled_entropy(args, ctx, data, groups, specs, group_by)
    rows, entries = [], []
    for name, mask in groups:
        x = data.x if mask is None else data.x[mask]
        h_value, d_value, log_n, _ = self_entropy(ctx, x, desc=f"H {name}")
        entries.append(
            {
                "name": name,
                "n_env": int(x.shape[0]),
                "entropy": _per_h(h_value),
                "diversity": _per_h(d_value),
                "log_n": log_n,
            }
        )
        for i, h in enumerate(bandwidths):
            rows.append(
                [
                    name,
                    str(x.shape[0]),
                    _h(h),
                    _f(_value(h_value, i)),
                    _f(_value(d_value, i)),
                    _f(log_n),
                ]
            )
    header = "group" if group_by else ("input" if len(specs) > 1 else "dataset")
    table = Table([header, "n_env", "h (1/Å)", "H (nats)", "D (nats)", "log N"], rows)
    whole = entries[-1]
    results = {
        "n_env": whole["n_env"],
        "entropy": whole["entropy"],
        "diversity": whole["diversity"],
        "log_n": whole["log_n"],
        "groups": entries[:-1],
    }
    return Report([table], results)


def _sampled_entropy(args, ctx, data, groups, specs, group_by) -> Report:
    """Rows of H ± standard error from :func:`jaxinfo.estimate_entropy` (no D)."""
    ctx.parameters.update(sample=args.sample, stderr=args.stderr, sample_seed=args.sample_seed)
    rows, entries = [], []
    for name, mask in groups:
        x = data.x if mask is None else data.x[mask]
        with ctx.timed("kernel_sums"):
            est = jaxinfo.estimate_entropy(
                x,
                ctx.h,
                n_queries=args.sample or 1024,
                seed=args.sample_seed,
                target_stderr=args.stderr,
                block_size=args.block_size,
                mesh=ctx.mesh,
                progress=ctx.show_progress,
            )
        entries.append(
            {
                "name": name,
                "n_env": int(x.shape[0]),
                "entropy": _per_h(est.value),
                "entropy_stderr": _per_h(est.stderr),
                "n_queries": est.n_queries,
                "log_n": float(np.log(x.shape[0])),
            }
        )
        for i, h in enumerate(ctx.bandwidths):
            value, error = _value(est.value, i), _value(est.stderr, i)
            rows.append(
                [name, str(x.shape[0]), _h(h), f"{_f(value)} ± {_f(error)}", str(est.n_queries)]
            )
    header = "group" if group_by else ("input" if len(specs) > 1 else "dataset")
    table = Table([header, "n_env", "h (1/Å)", "H ± stderr (nats)", "queries"], rows)
    whole = entries[-1]
    results = {**{k: v for k, v in whole.items() if k != "name"}, "groups": entries[:-1]}
    return Report([table], results)


# --------------------------------------------------------------------------------------------
# dh


def _top_option(parser):
    parser.add_argument(
        "--top",
        type=int,
        default=10,
        metavar="N",
        help="list the N most novel test environments (default 10; 0 for none)",
    )


def _dh_options(parser):
    group = parser.add_argument_group("trajectory")
    group.add_argument(
        "--against",
        choices=("reference", "previous", "self"),
        default=None,
        help=(
            "what each test frame is compared with: 'reference' (the -r files; the default "
            "when -r is given), 'previous' (all frames before it in the test inputs: novelty "
            "along a trajectory; the first frame has no value), or 'self' (the frame's own "
            "environments, as the peer's 'quests dH_traj'; the default of the alias dH_traj)"
        ),
    )
    group.add_argument(
        "--frames",
        type=int,
        default=30,
        metavar="N",
        help=(
            "per-frame summary: list every frame when there are at most N, else the N frames "
            "with the highest max δH (default 30; 0 for none; -o records every frame)"
        ),
    )


def _dh_mode(args) -> str:
    mode = args.against
    if mode is None:
        if args.reference:
            mode = "reference"
        elif args.invoked_as == "dH_traj":
            mode = "self"
        else:
            raise CLIError(
                "give reference files with -r/--reference, or --against previous|self to "
                "compare each test frame with the frames before it or with itself"
            )
    if mode == "reference" and not args.reference:
        raise CLIError("--against reference needs reference files: -r/--reference REF")
    if mode != "reference" and args.reference:
        raise CLIError(f"--against {mode} compares test frames among themselves; drop -r")
    return mode


def _finite_or_none(array) -> list:
    """A nested list with NaN (no value: the first frame with --against previous) as None."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        return [float(v) if np.isfinite(v) else None for v in array]
    return [_finite_or_none(row) for row in array]


@verb(
    "dh",
    aliases=("dH", "dH_traj"),
    help="differential entropy δH of each test environment against a reference set",
    options=(
        functools.partial(add_reference, required=False),
        add_descriptor_options,
        add_kernel_options,
        _eps_option,
        _top_option,
        _dh_options,
        add_json_output,
        add_extxyz_output(
            "write the test structures to extxyz with a per-atom 'dH' array "
            "(one column per bandwidth) to colour atoms by novelty in OVITO or ase"
        ),
        add_plot_output("write a histogram of δH to this PNG file"),
    ),
    outputs=("output", "extxyz", "plot"),
    epilog=(
        "examples:\n"
        "  jaxinfo dh md.xyz -r train.xyz --extxyz md_dH.xyz --plot dH.png\n"
        "  jaxinfo dh md.xyz --against previous      # novelty of each frame along a trajectory\n"
        '  EX=$(jaxinfo example --path); jaxinfo dh "$EX@48:60" -r "$EX@0:12"'
    ),
)
def dh_verb(args, ctx) -> Report:
    """Differential entropy δH(y | X) = -log sum_j K(y, x_j) of every test environment y.

    δH > 0 marks an environment that the reference set X does not cover (novel); δH <= 0 means
    it is already represented. X is the -r files, or with --against previous the frames before
    the environment's frame (novelty along a trajectory), or with --against self its own frame
    (the peer's dH_traj). Tables: δH per bandwidth, per test input (several inputs), per frame,
    and the most novel environments (input, frame, atom); -o writes every value, --extxyz
    writes them per atom.
    """
    mode = _dh_mode(args)
    if args.extxyz is not None:
        for spec in args.inputs:
            if io.is_descriptor_file(io.parse_source(spec)[0]):
                raise CLIError(
                    f"--extxyz needs structure files as test inputs; {spec} holds descriptors only"
                )
    if args.top < 0:
        raise CLIError(f"--top must be >= 0, got {args.top}")
    if args.frames < 0:
        raise CLIError(f"--frames must be >= 0, got {args.frames}")
    ctx.parameters.update(eps=args.eps, against=mode)
    reference = None
    if mode == "reference":
        reference = load_dataset(ctx, args.reference, role="reference")
    test = load_dataset(ctx, args.inputs, role="test")
    frames = test.frames()
    if reference is not None:
        check_same_width(test, reference)
        delta = delta_entropy(ctx, test.x, reference.x, desc="δH")
    else:
        delta = _delta_along_frames(ctx, test.x, frames, mode)
    columns = _columns(delta)
    known = np.isfinite(columns[:, 0])

    rows, summary = [], []
    for i, h in enumerate(ctx.bandwidths):
        d = columns[known, i]
        stats = _dh_stats(d, args.eps)
        stats = {"h": h, **stats}
        summary.append(stats)
        rows.append(
            [
                _h(h),
                str(test.n_env),
                "-" if reference is None else str(reference.n_env),
                *(_f(stats[key]) for key in ("min", "median", "mean", "max")),
                f"{100 * stats['novel_fraction']:.1f}%",
            ]
        )
    headers = ["h (1/Å)", "n_test", "n_ref", "min δH", "median", "mean", "max δH", "novel"]
    against = {
        "reference": "reference",
        "previous": "the frames before each frame",
        "self": "each frame itself",
    }[mode]
    title = f"δH(test | {against}) in nats; novel: δH >= eps"
    if mode == "previous":
        title += "; the first frame has no earlier frame and is left out"
    tables = [Table(headers, rows, title=title)]

    per_input = []
    if len(test.specs) > 1:
        sources = test.env_source()
        input_rows = []
        for index, spec in enumerate(test.specs):
            d = columns[(sources == index) & known, 0]
            n_env = int(np.sum(sources == index))
            stats = {"source": spec, "n_env": n_env, **_dh_stats(d, args.eps)}
            per_input.append(stats)
            input_rows.append(_summary_row(spec, stats))
        tables.append(
            Table(
                ["input", "n_env", "mean δH", "max δH", "novel"],
                input_rows,
                title=f"per test input (h = {_h(ctx.bandwidths[0])})",
            )
        )

    per_frame = []
    for spec, frame, start, stop in frames:
        d = columns[start:stop, 0]
        d = d[np.isfinite(d)]
        stats = {"source": spec, "frame": frame, "n_env": stop - start, **_dh_stats(d, args.eps)}
        per_frame.append(stats)
    if args.frames and len(frames) > 1:
        shown = list(range(len(per_frame)))
        title = f"per frame (h = {_h(ctx.bandwidths[0])})"
        if len(shown) > args.frames:
            scored = [i for i in shown if per_frame[i]["max"] is not None]
            shown = sorted(scored, key=lambda i: -per_frame[i]["max"])[: args.frames]
            title += f"; the {len(shown)} frames with the highest max δH of {len(per_frame)}"
        frame_rows = [
            [per_frame[i]["source"], per_frame[i]["frame"], *_summary_row("", per_frame[i])[1:]]
            for i in shown
        ]
        tables.append(
            Table(["input", "frame", "n_env", "mean δH", "max δH", "novel"], frame_rows, title)
        )

    top = min(args.top, int(known.sum()))
    most_novel = []
    if top:
        score = np.where(known, columns[:, 0], -np.inf)
        order = np.argsort(-score, kind="stable")[:top]
        where = test.locate(order)
        top_rows = []
        for row, (spec, frame, atom) in zip(order.tolist(), where, strict=True):
            most_novel.append(
                {"row": row, "source": spec, "frame": frame, "atom": atom, "dH": columns[row, 0]}
            )
            top_rows.append([spec, frame, atom, _f(float(columns[row, 0]))])
        title = f"most novel environments (h = {_h(ctx.bandwidths[0])})"
        tables.append(Table(["input", "frame", "atom", "δH"], top_rows, title=title))

    notes = []
    if args.extxyz is not None:
        io.write_per_atom(
            args.extxyz,
            iter_selected_structures(ctx, args.inputs),
            {"dH": np.nan_to_num(delta, nan=0.0)},
            overwrite=args.overwrite,
        )
        notes.append(f"wrote {args.extxyz} (per-atom array 'dH')")
    if args.plot is not None:
        _dh_histogram(columns[known], ctx.bandwidths, args)
        notes.append(f"wrote {args.plot}")

    results = {
        "n_env_test": test.n_env,
        "n_env_reference": None if reference is None else reference.n_env,
        "against": mode,
        "summary": summary,
        "per_input": per_input,
        "per_frame": per_frame,
        "most_novel": most_novel,
        "atoms_per_structure": test.n_atoms,
        "delta_entropy": _finite_or_none(delta) if not known.all() else delta,
    }
    return Report(tables, results, notes)


def _dh_stats(d: np.ndarray, eps: float) -> dict:
    """min, median, mean, max and the novel fraction of a vector of δH (None when empty)."""
    if d.size == 0:
        return dict.fromkeys(("min", "median", "mean", "max", "novel_fraction", "overlap"))
    return {
        "min": float(d.min()),
        "median": float(np.median(d)),
        "mean": float(d.mean()),
        "max": float(d.max()),
        "novel_fraction": float(np.mean(d >= eps)),
        "overlap": float(np.mean(d < eps)),
    }


def _summary_row(name: str, stats: dict) -> list[str]:
    if stats["mean"] is None:
        return [name, str(stats["n_env"]), "-", "-", "-"]
    return [
        name,
        str(stats["n_env"]),
        _f(stats["mean"]),
        _f(stats["max"]),
        f"{100 * stats['novel_fraction']:.1f}%",
    ]


def _delta_along_frames(ctx, x: np.ndarray, frames, mode: str) -> np.ndarray:
    """δH of each frame's rows against the rows of the frames before it (``previous``; NaN
    for the first frame) or against its own rows (``self``)."""
    n_h = len(ctx.bandwidths)
    out = np.full((x.shape[0], n_h) if n_h > 1 else (x.shape[0],), np.nan, dtype=x.dtype)
    with ctx.progress(total=len(frames), desc=f"δH ({mode})", unit="frame") as bar:
        for _, _, start, stop in frames:
            against = x[:start] if mode == "previous" else x[start:stop]
            if against.shape[0]:
                out[start:stop] = delta_entropy(ctx, x[start:stop], against, progress=False)
            bar.update()
    return out


def _dh_histogram(columns, bandwidths, args) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    bins = np.histogram_bin_edges(columns, bins=60)
    for i, h in enumerate(bandwidths):
        axes.hist(columns[:, i], bins=bins, alpha=0.6, label=f"h = {_h(h)} 1/Å")
    axes.axvline(0.0, color="k", linewidth=0.8, linestyle="--")
    axes.set_xlabel("δH (nats)")
    axes.set_ylabel("environments")
    axes.set_title("δH of test environments against the reference")
    axes.legend()
    save_figure(figure, args.plot, args.overwrite)


# --------------------------------------------------------------------------------------------
# overlap


@verb(
    "overlap",
    help="fraction of test environments covered by a reference set",
    options=(
        add_reference,
        add_descriptor_options,
        add_kernel_options,
        _eps_option,
        add_json_output,
    ),
    outputs=("output",),
    epilog="example:\n  jaxinfo overlap new.xyz -r train.xyz -o overlap.json",
)
def overlap_verb(args, ctx) -> Report:
    """Overlap (completeness) of a test set given a reference set: the fraction of test
    environments y with δH(y | X) < eps, in [0, 1]. 1 means the reference covers every test
    environment; swap TEST and -r to measure the other direction.
    """
    ctx.parameters["eps"] = args.eps
    reference = load_dataset(ctx, args.reference, role="reference")
    test = load_dataset(ctx, args.inputs, role="test")
    check_same_width(test, reference)
    columns = _columns(delta_entropy(ctx, test.x, reference.x, desc="δH"))
    values = np.mean(columns < args.eps, axis=0)
    rows = [
        [
            _h(h),
            str(test.n_env),
            str(reference.n_env),
            _f(float(values[i])),
            _f(float(columns[:, i].mean())),
        ]
        for i, h in enumerate(ctx.bandwidths)
    ]
    tables = [Table(["h (1/Å)", "n_test", "n_ref", "overlap", "mean δH"], rows)]
    per_input = []
    if len(test.specs) > 1:
        sources = test.env_source()
        input_rows = []
        for index, spec in enumerate(test.specs):
            d = columns[sources == index]
            covered = np.mean(d < args.eps, axis=0)
            entry = {
                "source": spec,
                "n_env": int(d.shape[0]),
                "overlap": _per_h(covered if d.shape[1] > 1 else covered[0]),
                "mean_delta_entropy": _per_h(d.mean(axis=0) if d.shape[1] > 1 else d[:, 0].mean()),
            }
            per_input.append(entry)
            mean0 = float(d[:, 0].mean())
            input_rows.append([spec, str(d.shape[0]), _f(float(covered[0])), _f(mean0)])
        tables.append(
            Table(
                ["input", "n_env", "overlap", "mean δH"],
                input_rows,
                title=f"per test input (h = {_h(ctx.bandwidths[0])})",
            )
        )
    results = {
        "per_input": per_input,
        "n_env_test": test.n_env,
        "n_env_reference": reference.n_env,
        "overlap": _per_h(values if len(ctx.bandwidths) > 1 else values[0]),
        "mean_delta_entropy": _per_h(
            columns.mean(axis=0) if len(ctx.bandwidths) > 1 else columns[:, 0].mean()
        ),
    }
    return Report(tables, results)


# --------------------------------------------------------------------------------------------
# descriptors


def _npz_output(parser):
    group = parser.add_argument_group("output")
    group.add_argument(
        "-o", "--output", required=True, metavar="FILE.npz", help="the .npz file to write"
    )
    group.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )


@verb(
    "descriptors",
    aliases=("make_descriptors",),
    help="compute QUESTS descriptors and save them to .npz",
    options=(add_inputs, add_descriptor_options, _npz_output),
    outputs=("output",),
    json_output=False,
    epilog=(
        "example:\n"
        "  jaxinfo descriptors md.xyz@::10 -o md.npz\n"
        "  jaxinfo entropy md.npz            # reuse them without recomputing"
    ),
)
def descriptors_verb(args, ctx) -> Report:
    """Compute the descriptors of every environment (rows in input order, 2K-1 columns, 1/Å)
    and save them to .npz under the key 'descriptors', with their provenance: k, cutoff,
    species mode, dtype, the sources, and for every row its source (row_source, an index into
    sources), frame (row_frame, -1 when unknown) and atom (row_atom). Descriptor files are
    accepted wherever structure files are; the command line refuses to mix files made with
    different k, cutoff or species mode, and -k/--cutoff that contradict them.
    """
    if Path(args.output).suffix.lower() != ".npz":
        raise CLIError(f"descriptor output must end in .npz, got {args.output}")
    specs = resolve_specs(ctx, args.inputs)
    data = load_dataset(ctx, specs)
    metadata = {
        "k": args.k,
        "cutoff": args.cutoff,
        "species": "none",
        "dtype": args.dtype,
        "sources": np.asarray(data.specs),
        "jaxinfo_version": jaxinfo.__version__,
        **_row_provenance(data),
    }
    if data.all_structures:
        metadata["atoms_per_structure"] = np.asarray(data.n_atoms, dtype=np.int64)
    io.save_descriptors(args.output, data.x, overwrite=args.overwrite, **metadata)
    rows = [
        [entry["source"], entry["kind"], str(entry.get("n_structures", "-")), str(entry["n_env"])]
        for entry in ctx.inputs["input"]
    ]
    table = Table(["input", "kind", "structures", "n_env"], rows)
    note = f"wrote {args.output}: descriptors of shape {data.x.shape}, {data.x.dtype}"
    return Report([table], {"n_env": data.n_env}, [note])


def _row_provenance(data) -> dict[str, np.ndarray]:
    """row_source / row_frame / row_atom of every row (descriptor inputs keep their labels)."""
    sources: list[str] = []
    code: dict[str, int] = {}
    row_source, row_frame, row_atom = [], [], []
    for spec, frame, start, stop in data.frames():
        index = code.setdefault(spec, len(code))
        if index == len(sources):
            sources.append(spec)
        n = stop - start
        row_source.append(np.full(n, index, dtype=np.int32))
        try:
            number = int(frame)
        except ValueError:  # '-' or '#i' (position counted from the end of a file)
            number = -1
        row_frame.append(np.full(n, number, dtype=np.int64))
        row_atom.append(np.arange(n, dtype=np.int32))
    # descriptor inputs with labels keep their atom numbers
    atoms = np.concatenate(row_atom)
    offset = 0
    for source, count in enumerate(data.env_counts):
        labels = data.labels[source] if source < len(data.labels) else None
        if labels is not None:
            atoms[offset : offset + count] = labels[2]
        offset += count
    return {
        "sources": np.asarray(sources),
        "row_source": np.concatenate(row_source),
        "row_frame": np.concatenate(row_frame),
        "row_atom": atoms,
    }


# --------------------------------------------------------------------------------------------
# bandwidth


def _bandwidth_options(parser):
    group = parser.add_argument_group("input")
    group.add_argument(
        "inputs",
        nargs="+",
        metavar="V_OR_FILE",
        help=(
            "an atomic volume in Å³/atom, or a structure file (FILE@selection) whose "
            "fully periodic frames give the mean volume per atom"
        ),
    )
    group.add_argument(
        "--method",
        choices=("gaussian", "cutoff"),
        default="gaussian",
        help="which fit of h(V): 'gaussian' (default) or 'cutoff'",
    )
    add_format_option(group)


@verb(
    "bandwidth",
    help="bandwidth h from an atomic volume or from a structure file",
    options=(_bandwidth_options, add_json_output),
    outputs=("output",),
    epilog="examples:\n  jaxinfo bandwidth 11.8\n  jaxinfo bandwidth POSCAR md.xyz@::100",
)
def bandwidth_verb(args, ctx) -> Report:
    """Bandwidth h (1/Å) that makes entropies comparable across densities, from the atomic
    volume V (Å³/atom): gaussian fit h = 0.0897141 exp(-(V/10.896)²/2) + 0.0119417, or the
    cutoff fit. For a structure file, V is the mean volume per atom of its selected frames.
    """
    ctx.parameters["method"] = args.method
    rows, entries = [], []
    for item in args.inputs:
        volume, n_frames = _volume_of(ctx, item)
        h = jaxinfo.bandwidth_from_volume(volume, method=args.method)
        entries.append({"input": item, "n_frames": n_frames, "volume": volume, "h": h})
        rows.append([item, "-" if n_frames is None else str(n_frames), _f(volume, 3), _f(h, 5)])
    table = Table(["input", "frames", "V (Å³/atom)", "h (1/Å)"], rows)
    return Report([table], {"bandwidths": entries})


def _volume_of(ctx, item: str) -> tuple[float, int | None]:
    if not Path(item).exists():
        try:
            volume = float(item)
        except ValueError:
            pass
        else:
            if not math.isfinite(volume) or volume <= 0:
                raise CLIError(f"atomic volume must be finite and > 0 (Å³/atom), got {item!r}")
            return volume, None
    volumes = []
    frame_of = frame_numbering(io.parse_source(item)[1])
    with ctx.progress(desc=f"volume {Path(item).name}", unit=" frames") as bar:
        for i, atoms in enumerate(io.iter_structures(item, format=ctx.args.format)):
            try:
                volumes.append(jaxinfo.atomic_volume(atoms))
            except ValueError as error:
                frame = frame_of(i)
                where = f"frame {frame}" if frame is not None else f"frame #{i} of the selection"
                raise io.InputError(f"{item}, {where}: {error}") from None
            bar.update()
    return float(np.mean(volumes)), len(volumes)


# --------------------------------------------------------------------------------------------
# learning-curve


def _learning_options(parser):
    group = parser.add_argument_group("sampling")
    which = group.add_mutually_exclusive_group()
    which.add_argument(
        "-f",
        "--fractions",
        type=_fractions,
        default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
        metavar="F,F,...",
        help="sample sizes as fractions of the environments (default 0.1,0.2,...,1)",
    )
    which.add_argument(
        "--sizes",
        metavar="N,N,...",
        help="sample sizes as numbers of environments (instead of --fractions)",
    )
    group.add_argument(
        "-n",
        "--runs",
        type=_positive_int,
        default=3,
        metavar="R",
        help="random draws (without replacement) per size (default 3)",
    )
    group.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _sample_sizes(args, n_env: int | None) -> list[int]:
    """Sorted distinct sample sizes; with ``n_env=None`` only checks the options."""
    if args.sizes is not None:
        try:
            sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
        except ValueError:
            raise CLIError(f"--sizes must be integers, got {args.sizes!r}") from None
        if not sizes or any(s < 1 for s in sizes):
            raise CLIError(f"--sizes must be integers >= 1, got {args.sizes!r}")
        too_big = [s for s in sizes if n_env is not None and s > n_env]
        if too_big:
            raise CLIError(f"--sizes {too_big} exceed the {n_env} environments of the input")
    else:
        fractions = args.fractions
        sizes = [max(1, round(f * (n_env or 1))) for f in fractions]
    return sorted(set(sizes))


@verb(
    "learning-curve",
    aliases=("learning_curve",),
    help="entropy against sample size, several random draws without replacement",
    options=(
        add_inputs,
        add_descriptor_options,
        add_kernel_options,
        _learning_options,
        add_json_output,
        add_plot_output("plot H (mean ± std) against sample size to this PNG file"),
    ),
    outputs=("output", "plot"),
    epilog="example:\n  jaxinfo learning-curve --example -n 5 --plot curve.png",
)
def learning_curve_verb(args, ctx) -> Report:
    """Entropy H of random subsets of the environments, drawn without replacement, against
    their size n: a curve that flattens means more data of the same kind adds little new
    information; log n (the maximum) is shown for comparison.
    """
    specs = resolve_specs(ctx, args.inputs)
    _sample_sizes(args, None)  # check the sizes before reading anything
    data = load_dataset(ctx, specs)
    sizes = _sample_sizes(args, data.n_env)
    ctx.parameters.update(sizes=sizes, runs=args.runs, seed=args.seed, example=bool(args.example))
    rng = np.random.default_rng(args.seed)
    bandwidths = ctx.bandwidths
    draws = [(size, 1 if size == data.n_env else args.runs) for size in sizes]
    points, rows = [], []
    with ctx.progress(total=sum(r for _, r in draws), desc="learning curve", unit="draw") as bar:
        for size, runs in draws:
            values = []
            for _ in range(runs):
                chosen = np.sort(rng.choice(data.n_env, size=size, replace=False))
                h_value = self_entropy(ctx, data.x[chosen], progress=False)[0]
                values.append(np.atleast_1d(h_value).astype(float))
                bar.update()
            values = np.asarray(values)  # (runs, n_h)
            mean, std = values.mean(axis=0), values.std(axis=0)
            points.append(
                {
                    "n_env": size,
                    "fraction": size / data.n_env,
                    "runs": runs,
                    "entropies": [_per_h(v if len(bandwidths) > 1 else v[0]) for v in values],
                    "mean": _per_h(mean if len(bandwidths) > 1 else mean[0]),
                    "std": _per_h(std if len(bandwidths) > 1 else std[0]),
                    "log_n": math.log(size),
                }
            )
            for i, h in enumerate(bandwidths):
                rows.append(
                    [
                        str(size),
                        _f(size / data.n_env, 3),
                        _h(h),
                        str(runs),
                        _f(mean[i]),
                        _f(std[i]),
                        _f(math.log(size)),
                    ]
                )
    headers = ["n_env", "fraction", "h (1/Å)", "runs", "H mean", "H std", "log n"]
    notes = []
    if args.plot is not None:
        _learning_plot(points, bandwidths, args)
        notes.append(f"wrote {args.plot}")
    return Report([Table(headers, rows)], {"n_env": data.n_env, "points": points}, notes)


def _learning_plot(points, bandwidths, args) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    n = np.asarray([p["n_env"] for p in points])
    for i, h in enumerate(bandwidths):
        mean = np.asarray([np.atleast_1d(p["mean"])[i] for p in points])
        std = np.asarray([np.atleast_1d(p["std"])[i] for p in points])
        axes.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=f"H, h = {_h(h)} 1/Å")
    axes.plot(n, np.log(n), "k--", linewidth=0.8, label="log n (maximum)")
    axes.set_xscale("log")
    axes.set_xlabel("environments sampled, n")
    axes.set_ylabel("entropy (nats)")
    axes.legend()
    save_figure(figure, args.plot, args.overwrite)


# --------------------------------------------------------------------------------------------
# compress


def _compress_options(parser):
    group = parser.add_argument_group("selection")
    group.add_argument(
        "-s",
        "--size",
        type=_positive_float,
        default=0.5,
        metavar="S",
        help="structures to keep: a fraction in (0, 1) or a count >= 1 (default 0.5)",
    )
    group.add_argument(
        "-m",
        "--method",
        default=None,
        help=(
            "selection method: msc (default), fps, kmeans, random, gradient, ... (see "
            "jaxinfo.select); msc_conditional (the default with -r)"
        ),
    )
    group.add_argument(
        "-r",
        "--reference",
        nargs="+",
        action="extend",
        metavar="REF",
        help="structures already held: select what complements them (msc_conditional)",
    )
    group.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _eps_option(group)


@verb(
    "compress",
    help="select a subset of structures that keeps the information (jaxinfo.select)",
    options=(
        add_inputs,
        add_descriptor_options,
        functools.partial(add_kernel_options, several=False),
        _compress_options,
        add_json_output,
        add_extxyz_output("write the selected structures, in selection order, to extxyz"),
    ),
    outputs=("output", "extxyz"),
    epilog="example:\n  jaxinfo compress md.xyz -s 100 -m msc --extxyz subset.xyz -o subset.json",
)
def compress_verb(args, ctx) -> Report:
    """Select a subset of the structures (in selection order) with jaxinfo.select, then report
    the entropy and diversity of the subset and the overlap of the whole dataset given the
    subset (the fraction of all environments it covers).
    """
    select = jaxinfo.select
    method = args.method or ("msc_conditional" if args.reference else "msc")
    if args.reference and method != "msc_conditional":
        raise CLIError(f"-r/--reference works with -m msc_conditional, not -m {method}")
    specs = resolve_specs(ctx, args.inputs)
    data = load_dataset(ctx, specs)
    if not data.all_structures:
        raise CLIError("compress selects structures: give structure files, not descriptor files")
    reference = None
    if args.reference:
        reference = load_dataset(ctx, args.reference, role="reference")
        check_same_width(data, reference)
    n_structures = len(data.n_atoms)
    if args.size < 1:
        size = max(1, round(args.size * n_structures))
    elif args.size != int(args.size):
        raise CLIError(f"--size must be a fraction in (0, 1) or a whole number, got {args.size}")
    else:
        size = int(args.size)
    if size > n_structures:
        raise CLIError(f"--size {size} exceeds the {n_structures} structures of the input")
    ctx.parameters.update(
        size=size, method=method, seed=args.seed, eps=args.eps, example=bool(args.example)
    )
    per_structure = data.per_structure()
    extra = {} if reference is None else {"reference": reference.x}
    with ctx.timed("select"):
        chosen = select(per_structure, size, method=method, h=ctx.h, seed=args.seed, **extra)
    chosen = [int(i) for i in np.asarray(chosen).reshape(-1)]
    subset = np.concatenate([per_structure[i] for i in chosen], axis=0)
    h_value, d_value, log_n, _ = self_entropy(ctx, subset, desc="H subset")
    all_h, all_d, all_log_n, _ = self_entropy(ctx, data.x, desc="H all")
    held = subset if reference is None else np.concatenate([reference.x, subset])
    covered = float(np.mean(delta_entropy(ctx, data.x, held, desc="overlap") < args.eps))

    table = Table(
        ["set", "structures", "n_env", "H (nats)", "D (nats)", "log N", "overlap"],
        [
            [
                "selected",
                str(size),
                str(subset.shape[0]),
                _f(_value(h_value)),
                _f(_value(d_value)),
                _f(log_n),
                _f(covered),
            ],
            [
                "all",
                str(n_structures),
                str(data.n_env),
                _f(_value(all_h)),
                _f(_value(all_d)),
                _f(all_log_n),
                "1.0000",
            ],
        ],
        title=(
            f"{method} selection (h = {_h(ctx.h)}); overlap: fraction of all environments "
            "covered by the selection" + (" and the reference" if reference is not None else "")
        ),
    )
    where = [(data.specs[data.structure_source[i]], data.structure_frame[i]) for i in chosen]
    shown = ", ".join(str(i) for i in chosen[:20]) + (" ..." if len(chosen) > 20 else "")
    notes = [f"selected structures (in order): {shown}"]
    if args.extxyz is not None:
        wanted = set(chosen)
        kept = {
            i: atoms for i, atoms in enumerate(iter_selected_structures(ctx, specs)) if i in wanted
        }
        io.write_per_atom(args.extxyz, [kept[i] for i in chosen], {}, overwrite=args.overwrite)
        notes.append(f"wrote {args.extxyz}")
    results = {
        "n_structures": n_structures,
        "n_env": data.n_env,
        "selected": chosen,
        "selected_frames": [{"source": s, "frame": f} for s, f in where],
        "selected_n_env": int(subset.shape[0]),
        "entropy": _per_h(h_value),
        "diversity": _per_h(d_value),
        "overlap": covered,
        "entropy_all": _per_h(all_h),
        "diversity_all": _per_h(all_d),
    }
    return Report([table], results, notes)


# --------------------------------------------------------------------------------------------
# example


def _example_options(parser):
    parser.add_argument(
        "--path", action="store_true", help="print only the path of the file (for scripts)"
    )


@verb(
    "example",
    help="where the bundled example dataset is and what it holds",
    options=(_example_options,),
    epilog=(
        "example:\n"
        "  EX=$(jaxinfo example --path)\n"
        '  jaxinfo dh "$EX@48:60" -r "$EX@0:12"      # liquid against bulk at 300 K'
    ),
)
def example_verb(args, ctx) -> Report:
    """The bundled Cu dataset (EMT molecular dynamics: fcc bulk at 300-1200 K, liquid,
    fcc(111) surfaces; 84 frames, 4368 environments): its path, and the frame range of each
    label for FILE@start:stop selections.
    """
    from jaxinfo.datasets import example_path

    path = example_path()
    if args.path:
        return Report(notes=[str(path)])
    labels: dict[str, list] = {}
    for i, atoms in enumerate(io.iter_structures(str(path))):
        entry = labels.setdefault(atoms.info.get("label", "?"), [i, i, len(atoms), 0])
        entry[1] = i
        entry[3] += len(atoms)
    rows = [
        [label, f"@{first}:{last + 1}", str(last - first + 1), str(n_atoms), str(n_env)]
        for label, (first, last, n_atoms, n_env) in labels.items()
    ]
    table = Table(["label", "selection", "frames", "atoms", "n_env"], rows, title=str(path))
    return Report([table])
