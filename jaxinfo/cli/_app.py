"""The command-line framework: verb table, shared option groups, error handling, output.

A verb is a function ``run(args, ctx) -> Report`` registered with :func:`verb`, together with
the option groups it takes. :func:`main` parses the command line, enables JAX's persistent
compilation cache, checks that every output file may be written (before any computation), runs
the verb (inside ``jax.enable_x64`` with ``--dtype float64``; JAX's global setting is left
alone), writes the JSON record and then prints its tables. Every output file is written to a
temporary file in its directory and renamed into place (:func:`jaxinfo.io.atomic_output`).
"""

from __future__ import annotations

import argparse
import contextlib
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

#: Bandwidths accepted on the command line (1/Å): the range over which the bounds
#: 0 <= H <= D <= log N are tested in both precisions (tests/test_cli_robustness.py).
MIN_BANDWIDTH = 1e-6
MAX_BANDWIDTH = 10.0
#: ``-b auto``: h from the mean atomic volume of the structures (jaxinfo.bandwidth).
AUTO = "auto"
#: Set to 1 to run without JAX's persistent compilation cache (same as ``--no-cache``).
NO_CACHE_ENV = "JAXINFO_NO_CACHE"

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
    #: Other names that select this verb (the peer's spellings, e.g. ``dH``).
    aliases: tuple[str, ...] = ()


#: The registered verbs, in the order they are listed by ``jaxinfo --help``.
VERBS: dict[str, Verb] = {}
#: Alias -> verb name.
ALIASES: dict[str, str] = {}


def verb(
    name: str,
    *,
    help: str,
    options: Sequence[Callable[[argparse.ArgumentParser], None]] = (),
    epilog: str = "",
    outputs: Sequence[str] = (),
    json_output: bool = True,
    aliases: Sequence[str] = (),
):
    """Registers ``func(args, ctx) -> Report`` as the verb ``name`` (also reachable by its
    ``aliases``); its docstring is the description shown by ``jaxinfo NAME --help``."""

    def register(func):
        if name in VERBS or name in ALIASES:
            raise RuntimeError(f"verb {name!r} registered twice")
        description = inspect.cleandoc(func.__doc__ or help)
        VERBS[name] = Verb(
            name,
            func,
            help,
            description,
            tuple(options),
            epilog,
            tuple(outputs),
            json_output,
            tuple(aliases),
        )
        for alias in aliases:
            ALIASES[alias] = name
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
            aliases=list(item.aliases),
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


def _bandwidth_value(text: str) -> float | str:
    """One bandwidth: ``auto`` or a number in [MIN_BANDWIDTH, MAX_BANDWIDTH] (1/Å)."""
    if text.strip().lower() == AUTO:
        return AUTO
    value = _positive_float(text)
    if not MIN_BANDWIDTH <= value <= MAX_BANDWIDTH:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_BANDWIDTH:g} and {MAX_BANDWIDTH:g} 1/Å (descriptor entries "
            f"are ~0.01-2 1/Å; the default is {DEFAULT_BANDWIDTH}), got {text!r}"
        )
    return value


def _bandwidths(text: str) -> list[float | str]:
    """'0.01,0.02' -> [0.01, 0.02]; 'auto' -> ['auto']; each number in the accepted range."""
    parts = [part for part in text.replace(" ", ",").split(",") if part]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected one or more numbers, got {text!r}")
    return [_bandwidth_value(part) for part in parts]


def _fractions(text: str) -> list[float]:
    """'0.1,0.5,1' -> [0.1, 0.5, 1.0]; each a number in (0, 1]."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected fractions in (0, 1], got {text!r}")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected fractions in (0, 1] separated by commas, got {part!r}"
            ) from None
        if not (math.isfinite(value) and 0 < value <= 1):
            raise argparse.ArgumentTypeError(f"each fraction must be in (0, 1], got {part!r}")
        values.append(value)
    return values


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


def add_reference(parser, *, required: bool = True):
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
        required=required,
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
        "--nbrs",
        dest="k",
        type=_positive_int,
        default=None,
        metavar="K",
        help=(
            f"number of nearest neighbours; descriptor width 2K-1 (default {DEFAULT_K}, or "
            "the k of .npz descriptor inputs)"
        ),
    )
    group.add_argument(
        "-c",
        "--cutoff",
        type=_positive_float,
        default=None,
        metavar="RC",
        help=f"cutoff radius in Å (default {DEFAULT_CUTOFF}, or that of .npz descriptor inputs)",
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
            type=_bandwidths,
            action="extend",
            metavar="H",
            help=(
                f"kernel bandwidth(s) h in 1/Å, {MIN_BANDWIDTH:g} to {MAX_BANDWIDTH:g} (default "
                f"{DEFAULT_BANDWIDTH}); several as -b 0.01,0.015 or -b 0.01 -b 0.015 (one "
                "distance pass for all); 'auto': h from the mean atomic volume of the "
                "structures (see 'jaxinfo bandwidth')"
            ),
        )
    else:
        group.add_argument(
            "-b",
            "--bandwidth",
            dest="bandwidth",
            type=lambda text: [_bandwidth_value(text)],
            metavar="H",
            help=(
                f"kernel bandwidth h in 1/Å, {MIN_BANDWIDTH:g} to {MAX_BANDWIDTH:g} (default "
                f"{DEFAULT_BANDWIDTH}); 'auto': from the mean atomic volume of the structures"
            ),
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
    group.add_argument(
        "--no-cache",
        action="store_true",
        help=(
            "do not use JAX's persistent compilation cache (default: on, in "
            f"$XDG_CACHE_HOME/jaxinfo/jax or ~/.cache/jaxinfo/jax; also {NO_CACHE_ENV}=1)"
        ),
    )


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
    #: Volume per atom (Å³) of every fully periodic structure read (for ``-b auto``).
    volumes: list[float] = field(default_factory=list)

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
        """The bandwidths given with ``-b`` (default [0.015]), ``auto`` resolved from the
        atomic volume of the structures read so far."""
        given = list(getattr(self.args, "bandwidth", None) or [DEFAULT_BANDWIDTH])
        if AUTO in given:
            auto = self.auto_bandwidth()
            given = [auto if value == AUTO else value for value in given]
        return list(dict.fromkeys(float(value) for value in given))

    def auto_bandwidth(self) -> float:
        """h from the mean atomic volume of the fully periodic structures read (``-b auto``)."""
        if not self.volumes:
            raise CLIError(
                "-b auto needs fully periodic structure files (it uses their volume per atom); "
                "give -b H instead"
            )
        from jaxinfo.bandwidth import bandwidth_from_volume

        volume = float(sum(self.volumes) / len(self.volumes))
        h = float(bandwidth_from_volume(volume))
        self.parameters["auto_bandwidth"] = {
            "rule": "gaussian",
            "volume_per_atom": volume,
            "n_structures": len(self.volumes),
            "h": h,
        }
        return h

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


def write_json(path, record: dict, overwrite: bool) -> Path:
    """Writes ``record`` as indented JSON (atomically: temporary file, then rename)."""
    with io.atomic_output(path, overwrite) as handle:
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
    """Saves a matplotlib figure as PNG (atomically, :func:`jaxinfo.io.atomic_output`) and
    closes it."""
    with io.atomic_output(path, overwrite, binary=True) as handle:
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
        _probe_directory(path)
    if getattr(args, "plot", None) is not None and importlib.util.find_spec("matplotlib") is None:
        raise CLIError("--plot needs matplotlib: pip install 'jaxinfo[plot]'")


# --------------------------------------------------------------------------------------------
# main


def _probe_directory(path: Path) -> None:
    """Creates and deletes a temporary file next to ``path``: the directory takes new files."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=path.parent or ".", prefix=".jaxinfo-probe-"):
            pass
    except OSError as exc:
        raise PermissionError(
            f"cannot create files in output directory {path.parent} (for {path}): "
            f"{exc.strerror or exc}"
        ) from None


def _precision(args):
    """``--dtype float64``: JAX x64 for the duration of the run (``jax.enable_x64``), not a
    global switch; a no-op context otherwise."""
    if getattr(args, "dtype", None) == "float64":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def cache_directory() -> Path:
    """The per-user directory of JAX's persistent compilation cache used by the command line:
    ``$XDG_CACHE_HOME/jaxinfo/jax``, or ``~/.cache/jaxinfo/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxinfo" / "jax"


def _configure_cache(args) -> None:
    """Enables JAX's persistent compilation cache (every program, however small), unless
    ``--no-cache`` or ``JAXINFO_NO_CACHE=1``; a directory set by the user through JAX's own
    ``JAX_COMPILATION_CACHE_DIR`` is kept. A cache that cannot be created is skipped silently."""
    if getattr(args, "no_cache", False):
        return
    if os.environ.get(NO_CACHE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return
    import jax

    directory = jax.config.jax_compilation_cache_dir
    if not directory:
        directory = str(cache_directory())
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            return
        jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


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
        The exit status: 0 on success (also when stdout is closed early, as by ``| head``),
        2 for an error the user can fix (one line ``jaxinfo: error: ...`` on stderr), 130 when
        interrupted (the console script also handles SIGINT/SIGTERM at any moment, with 130/143;
        see ``jaxinfo_launch``). Tracebacks are shown only with ``--debug``; other failures
        propagate.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.invoked_as = args.verb
    args.verb = ALIASES.get(args.verb, args.verb)
    item = VERBS[args.verb]
    ctx = Context(args)
    try:
        _check_outputs(item, args)
        _configure_cache(args)
        with _precision(args):
            _resolve_descriptor_parameters(args)
            with ctx.timed("total"):
                report = item.run(args, ctx)
        if item.json_output and getattr(args, "output", None) is not None:
            write_json(args.output, _record(item, ctx, report, argv), args.overwrite)
            report.notes.append(f"wrote {args.output}")
        _print_report(report)
    except BrokenPipeError:
        return _stdout_closed()
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
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()
    return EXIT_OK


def _print_report(report: Report) -> None:
    for table in report.tables:
        print(table.render())
        print()
    for note in report.notes:
        print(note)


def _stdout_closed() -> int:
    """stdout was closed by its reader (``jaxinfo ... | head``): outputs are already written;
    stop quietly, and keep Python from complaining again when it flushes stdout at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


def _resolve_descriptor_parameters(args) -> None:
    """Fills ``-k``/``--cutoff`` (default, or the provenance of .npz descriptor inputs) and
    refuses inputs whose provenance contradicts each other or the options given."""
    if not hasattr(args, "k"):
        return
    from jaxinfo.cli._data import reconcile_provenance

    specs = [*(getattr(args, "inputs", None) or []), *(getattr(args, "reference", None) or [])]
    reconcile_provenance(args, specs)
