"""The command-line framework: verb table, shared option groups, error handling, output.

A verb is a function ``run(args, ctx) -> Report`` registered with :func:`verb`, together with
the option groups it takes. :func:`main` parses the command line, switches JAX to float64 when
asked (before any computation), checks that every output file may be written (before any
computation), runs the verb, prints its tables and writes the JSON record.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxinfo import io

PROG = "jaxinfo"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_K = 32
DEFAULT_CUTOFF = 5.0
DEFAULT_BANDWIDTH = 0.015
DEFAULT_BLOCK_SIZE = 1024
DEFAULT_CHUNK = 256
DEFAULT_EPS = 1e-5


class CLIError(Exception):
    """A problem with the command line that the user can fix (exit status 2)."""


# --------------------------------------------------------------------------------------------
# Parser


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``jaxinfo: error: ...``, exit status 2."""

    def error(self, message: str):
        hint = f" (see '{self.prog} --help')"
        self.exit(EXIT_USAGE, f"{PROG}: error: {message}{hint}\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog, **kwargs):
        kwargs.setdefault("max_help_position", 30)
        kwargs.setdefault("width", _help_width())
        super().__init__(prog, **kwargs)


def _help_width() -> int:
    try:
        return max(60, min(100, int(os.environ.get("COLUMNS", "100"))))
    except ValueError:
        return 100


@dataclass(frozen=True)
class Verb:
    """One sub-command: its function, help texts and option groups."""

    name: str
    run: Callable[[argparse.Namespace, Context], Report]
    help: str
    description: str
    options: tuple[Callable[[argparse.ArgumentParser], None], ...]
    epilog: str = ""
    #: Names of ``args`` attributes that hold output paths (checked before computing).
    outputs: tuple[str, ...] = ()
    #: Whether ``-o/--output`` is the JSON record written by :func:`main`.
    json_output: bool = True


#: The registered verbs, in the order they are listed by ``jaxinfo --help``.
VERBS: dict[str, Verb] = {}


def verb(
    name: str,
    *,
    help: str,
    options: Sequence[Callable[[argparse.ArgumentParser], None]] = (),
    epilog: str = "",
    outputs: Sequence[str] = (),
    json_output: bool = True,
):
    """Registers ``func(args, ctx) -> Report`` as the verb ``name``; its docstring is the
    description shown by ``jaxinfo NAME --help``."""

    def register(func):
        if name in VERBS:
            raise RuntimeError(f"verb {name!r} registered twice")
        description = inspect.cleandoc(func.__doc__ or help)
        VERBS[name] = Verb(
            name, func, help, description, tuple(options), epilog, tuple(outputs), json_output
        )
        return func

    return register


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxinfo`` argument parser with one sub-parser per registered verb.

    Returns:
        An :class:`argparse.ArgumentParser`; ``parse_args`` gives a namespace whose ``verb``
        attribute names the sub-command.
    """
    from jaxinfo import __version__

    parser = _Parser(
        prog=PROG,
        description=(
            "Information entropy (QUESTS) of atomistic datasets: how much a dataset holds, "
            "which environments are novel, how two datasets overlap."
        ),
        epilog=(
            "Start with 'jaxinfo entropy --example' (the bundled Cu dataset).\n"
            "Run 'jaxinfo VERB --help' for the options of a verb."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs", required=True)
    for item in VERBS.values():
        child = sub.add_parser(
            item.name,
            help=item.help,
            description=item.description,
            epilog=item.epilog or None,
            formatter_class=_HelpFormatter,
        )
        for add in item.options:
            add(child)
        _add_general(child)
    return parser


# --------------------------------------------------------------------------------------------
# Value types for argparse (messages name the constraint)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _positive_floats(text: str) -> list[float]:
    """'0.01,0.02' -> [0.01, 0.02]; each value finite and > 0."""
    parts = [part for part in text.replace(" ", ",").split(",") if part]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected one or more numbers, got {text!r}")
    return [_positive_float(part) for part in parts]


# --------------------------------------------------------------------------------------------
# Option groups shared by the verbs


def add_inputs(parser, *, example: bool = True, group_by: bool = False, what: str = "input"):
    """Positional INPUT files, ``--example`` and (optionally) ``--by``."""
    group = parser.add_argument_group("input")
    group.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help=(
            f"{what} file(s): any format ase reads (extxyz, POSCAR, LAMMPS dump, .traj, ...), "
            "optionally with a frame selection FILE@i or FILE@start:stop:step, or descriptor "
            "files (.npz/.npy; @start:stop:step then selects rows)"
        ),
    )
    if example:
        group.add_argument(
            "--example",
            action="store_true",
            help="use the bundled Cu example dataset (see 'jaxinfo example') as input",
        )
    if group_by:
        group.add_argument(
            "--by",
            metavar="KEY",
            help=(
                "also report each group of structures with the same atoms.info[KEY] "
                "(e.g. config_type); default 'label' with --example"
            ),
        )
    add_format_option(group)


def add_format_option(group):
    """``--format``: the ase format of structure files, when the name does not tell."""
    if any("--format" in action.option_strings for action in group._group_actions):
        return
    group.add_argument(
        "--format",
        metavar="FMT",
        help="ase format name of the structure files (default: guessed from name and contents)",
    )


def add_reference(parser):
    """Positional TEST files and ``-r/--reference`` files."""
    group = parser.add_argument_group("input")
    group.add_argument(
        "inputs",
        nargs="+",
        metavar="TEST",
        help=(
            "test file(s): any format ase reads, optionally FILE@start:stop:step, or "
            "descriptor files (.npz/.npy)"
        ),
    )
    group.add_argument(
        "-r",
        "--reference",
        nargs="+",
        action="extend",
        required=True,
        metavar="REF",
        help="reference file(s), same forms as TEST (give -r after the test files)",
    )
    add_format_option(group)


def add_descriptor_options(parser):
    """``-k``, ``--cutoff``, ``--dtype``, ``--chunk``."""
    group = parser.add_argument_group("descriptor")
    group.add_argument(
        "-k",
        "--neighbours",
        dest="k",
        type=_positive_int,
        default=DEFAULT_K,
        metavar="K",
        help=f"number of nearest neighbours; descriptor width 2K-1 (default {DEFAULT_K})",
    )
    group.add_argument(
        "-c",
        "--cutoff",
        type=_positive_float,
        default=DEFAULT_CUTOFF,
        metavar="RC",
        help=f"cutoff radius in Å (default {DEFAULT_CUTOFF})",
    )
    group.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="floating precision of all computations (default float32)",
    )
    group.add_argument(
        "--chunk",
        type=_positive_int,
        default=DEFAULT_CHUNK,
        metavar="N",
        help=(
            "structures read and described per step; trajectories are streamed, never held "
            f"whole (default {DEFAULT_CHUNK})"
        ),
    )


def add_kernel_options(parser, *, several: bool = True):
    """``-b/--bandwidth``, ``--block-size``, ``--multi-device``."""
    group = parser.add_argument_group("kernel")
    if several:
        group.add_argument(
            "-b",
            "--bandwidth",
            dest="bandwidth",
            type=_positive_floats,
            action="extend",
            metavar="H",
            help=(
                f"kernel bandwidth(s) h in 1/Å (default {DEFAULT_BANDWIDTH}); several as "
                "-b 0.01,0.015 or -b 0.01 -b 0.015 (one distance pass for all)"
            ),
        )
    else:
        group.add_argument(
            "-b",
            "--bandwidth",
            dest="bandwidth",
            type=lambda text: [_positive_float(text)],
            metavar="H",
            help=f"kernel bandwidth h in 1/Å (default {DEFAULT_BANDWIDTH})",
        )
    group.add_argument(
        "--block-size",
        type=_positive_int,
        default=DEFAULT_BLOCK_SIZE,
        metavar="B",
        help=(
            "rows/columns per kernel block; memory ~ B² floats per bandwidth "
            f"(default {DEFAULT_BLOCK_SIZE})"
        ),
    )
    group.add_argument(
        "--multi-device",
        action="store_true",
        help="split kernel sums over all JAX devices (jaxinfo.data_mesh()); same numbers",
    )


def add_json_output(parser, *, help: str = "write all numbers and parameters to this JSON file"):
    """``-o/--output`` and ``--overwrite``."""
    group = _output_group(parser)
    group.add_argument("-o", "--output", metavar="FILE", help=help)
    _add_overwrite(group)


def add_extxyz_output(help: str):
    """``--extxyz FILE`` with a verb-specific help text."""

    def add(parser):
        group = _output_group(parser)
        group.add_argument("--extxyz", metavar="FILE", help=help)
        _add_overwrite(group)

    return add


def add_plot_output(help: str):
    """``--plot FILE.png`` (needs matplotlib) with a verb-specific help text."""

    def add(parser):
        group = _output_group(parser)
        group.add_argument("--plot", metavar="PNG", help=help + " (needs matplotlib)")
        _add_overwrite(group)

    return add


def _output_group(parser):
    for group in parser._action_groups:
        if group.title == "output":
            return group
    return parser.add_argument_group("output")


def _add_overwrite(group):
    if any("--overwrite" in action.option_strings for action in group._group_actions):
        return
    group.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )


def _add_general(parser):
    group = parser.add_argument_group("general")
    group.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars (off anyway without a tty)"
    )
    group.add_argument("--debug", action="store_true", help="show tracebacks of errors")


# --------------------------------------------------------------------------------------------
# Run-time context and results


@dataclass
class Table:
    """A table for the terminal: column headers and rows of already formatted cells."""

    headers: Sequence[str]
    rows: list[Sequence[str]]
    title: str = ""

    def render(self) -> str:
        """The table as aligned text (numbers right-aligned, text left-aligned)."""
        cells = [list(map(str, self.headers)), *[list(map(str, row)) for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        numeric = [
            all(_looks_numeric(row[i]) for row in cells[1:]) and len(cells) > 1
            for i in range(len(self.headers))
        ]

        def line(row):
            parts = [
                cell.rjust(width) if num else cell.ljust(width)
                for cell, width, num in zip(row, widths, numeric, strict=True)
            ]
            return "  ".join(parts).rstrip()

        out = [self.title] if self.title else []
        out.append(line(cells[0]))
        out.append("  ".join("-" * width for width in widths))
        out.extend(line(row) for row in cells[1:])
        return "\n".join(out)


def _looks_numeric(text: str) -> bool:
    text = text.strip().rstrip("%")
    if text in ("", "-"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class Report:
    """What a verb returns: tables for the terminal and numbers for the JSON record."""

    tables: list[Table] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """Per-run state shared by the verb and the input/output helpers."""

    args: argparse.Namespace
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def show_progress(self) -> bool:
        """Whether progress bars are drawn: stderr is a terminal and ``--quiet`` is off."""
        return not getattr(self.args, "quiet", False) and sys.stderr.isatty()

    def progress(self, iterable: Iterable | None = None, *, enabled: bool = True, **kwargs):
        """A tqdm progress bar on stderr (inactive when :attr:`show_progress` is false)."""
        from tqdm import tqdm

        kwargs.setdefault("leave", False)
        kwargs.setdefault("dynamic_ncols", True)
        disable = not (enabled and self.show_progress)
        return tqdm(iterable, file=sys.stderr, disable=disable, **kwargs)

    def timed(self, name: str):
        """Context manager adding the elapsed wall time to ``timings[name]`` (seconds)."""
        return _Timer(self.timings, name)

    @property
    def bandwidths(self) -> list[float]:
        """The bandwidths given with ``-b`` (default [0.015])."""
        return list(getattr(self.args, "bandwidth", None) or [DEFAULT_BANDWIDTH])

    @property
    def h(self):
        """The bandwidth argument for the library: a float, or a 1-D array for several."""
        import numpy as np

        values = self.bandwidths
        return values[0] if len(values) == 1 else np.asarray(values)

    @property
    def mesh(self):
        """A device mesh over all devices with ``--multi-device``, else None."""
        if not getattr(self.args, "multi_device", False):
            return None
        import jaxinfo

        return jaxinfo.data_mesh()


class _Timer:
    def __init__(self, store, name):
        self.store, self.name = store, name

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        elapsed = time.perf_counter() - self.start
        self.store[self.name] = self.store.get(self.name, 0.0) + elapsed
        return False


# --------------------------------------------------------------------------------------------
# Output files


def _open_output(path: str | os.PathLike, overwrite: bool, binary: bool = False):
    """Opens an output file for writing after :func:`jaxinfo.io.check_writable`; without
    ``overwrite`` the file is created exclusively, so a file that appeared meanwhile is kept."""
    path = io.check_writable(path, overwrite)
    mode = ("w" if overwrite else "x") + ("b" if binary else "")
    try:
        return open(path, mode, **({} if binary else {"encoding": "utf-8"}))
    except FileExistsError:
        raise FileExistsError(
            f"refusing to overwrite existing file {path}; pass --overwrite to replace it"
        ) from None


def write_json(path, record: dict, overwrite: bool) -> Path:
    """Writes ``record`` as indented JSON."""
    with _open_output(path, overwrite) as handle:
        json.dump(record, handle, indent=2, default=_json_default)
        handle.write("\n")
    return Path(path)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "__array__"):
        return np.asarray(value).tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def pyplot():
    """Imports matplotlib.pyplot with the non-interactive Agg backend, or raises CLIError."""
    try:
        import matplotlib
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'jaxinfo[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, overwrite: bool) -> Path:
    """Saves a matplotlib figure as PNG (through :func:`_open_output`) and closes it."""
    with _open_output(path, overwrite, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=150, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return Path(path)


def _check_outputs(item: Verb, args) -> None:
    """Fails before any computation if an output may not be written."""
    seen: dict[Path, str] = {}
    for name in item.outputs:
        value = getattr(args, name, None)
        if value is None:
            continue
        path = Path(value)
        key = path.resolve()
        if key in seen:
            raise CLIError(f"--{name} and --{seen[key]} name the same file {value}")
        seen[key] = name
        io.check_writable(path, getattr(args, "overwrite", False))
    if getattr(args, "plot", None) is not None and importlib.util.find_spec("matplotlib") is None:
        raise CLIError("--plot needs matplotlib: pip install 'jaxinfo[plot]'")


# --------------------------------------------------------------------------------------------
# main


def _configure_precision(args) -> None:
    """``--dtype float64`` turns on JAX x64: the application's choice, made before computing."""
    if getattr(args, "dtype", None) == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)


def _record(item: Verb, ctx: Context, report: Report, argv: Sequence[str]) -> dict:
    from jaxinfo import __version__

    return {
        "jaxinfo_version": __version__,
        "command": item.name,
        "argv": list(argv),
        "parameters": ctx.parameters,
        "inputs": ctx.inputs,
        **report.results,
        "timings_s": {name: round(value, 4) for name, value in ctx.timings.items()},
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``jaxinfo`` command line.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 2 for an error the user can fix (one line
        ``jaxinfo: error: ...`` on stderr), 130 when interrupted. Tracebacks are shown only
        with ``--debug``; other failures propagate.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    item = VERBS[args.verb]
    ctx = Context(args)
    try:
        _configure_precision(args)
        _check_outputs(item, args)
        with ctx.timed("total"):
            report = item.run(args, ctx)
        for table in report.tables:
            print(table.render())
            print()
        for note in report.notes:
            print(note)
        if item.json_output and getattr(args, "output", None) is not None:
            write_json(args.output, _record(item, ctx, report, argv), args.overwrite)
            print(f"wrote {args.output}")
    except (CLIError, ValueError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:  # XLA reports exhausted device memory as a RuntimeError
        if "RESOURCE_EXHAUSTED" not in str(exc) or args.debug:
            raise
        print(
            f"{PROG}: error: out of memory ({_one_line(exc)[:200]}); try a smaller --block-size",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    sys.stdout.flush()
    return EXIT_OK
