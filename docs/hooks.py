"""MkDocs hooks: fail the build on missing docstrings; generate the API and CLI references.

* ``on_config``: every name in ``jaxinfo.__all__`` and every public function, class and method of
  every public module (no leading underscore anywhere in its dotted name) must have a
  docstring; otherwise the build fails with the list of offenders.
* ``on_page_markdown``: ``<!-- api-reference -->`` in ``api.md`` becomes one mkdocstrings block
  (``::: jaxinfo.NAME``) per name in ``jaxinfo.__all__``, grouped by topic, so a new public
  name is documented without editing the page; ``<!-- cli-reference -->`` in ``cli.md`` becomes
  the ``--help`` text of ``jaxinfo`` and of each verb, rendered from the argparse parser.

* ``on_files``: MathJax 3 (``tex-mml-chtml.js`` and its CHTML fonts) is copied from the
  ``django-static-mathjax`` wheel into ``javascripts/mathjax/`` of the site, so that equations
  render offline; no page loads a remote script.

``tests/test_docs.py`` imports :func:`missing_docstrings` from here.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from types import ModuleType

API_MARKER = "<!-- api-reference -->"
CLI_MARKER = "<!-- cli-reference -->"

#: Topic -> names of ``jaxinfo.__all__``, in page order; names not listed go under "Other".
API_GROUPS: dict[str, list[str]] = {
    "Descriptors": [
        "descriptors",
        "species_descriptors",
        "structure_descriptors",
        "environment_descriptor",
        "neighbour_table",
        "NeighbourTable",
        "neighbour_list",
        "NeighbourList",
    ],
    "Estimators": [
        "entropy",
        "diversity",
        "delta_entropy",
        "overlap",
        "log_density",
        "dataset_metrics",
        "DatasetMetrics",
    ],
    "Large datasets": [
        "estimate_entropy",
        "estimate_diversity",
        "SampledEstimate",
        "delta_entropy_streamed",
        "open_source",
        "DescriptorSource",
    ],
    "Selection": ["select", "selection_summary"],
    "Kernel sums": ["log_kernel_sums", "prepare_reference", "PreparedReference"],
    "Bandwidth": ["bandwidth_from_volume", "atomic_volume"],
    "Devices": ["data_mesh"],
}
#: Public modules documented as a whole after the flat namespace, in this order; any other
#: public module none of whose public names is re-exported by ``jaxinfo`` is added after them.
API_MODULES = ["jaxinfo.io", "jaxinfo.datasets"]
#: Modules never documented as a whole (the command line has its own page).
API_SKIP_MODULES = {"jaxinfo", "jaxinfo.cli"}


# --------------------------------------------------------------------------------------------
# Docstring check


def public_modules(package: str = "jaxinfo") -> list[ModuleType]:
    """Imports and returns the package and its public submodules (no ``_`` in any part)."""
    root = importlib.import_module(package)
    modules = [root]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in vars(module) if not name.startswith("_")]
    return list(names)


def _documentable(obj) -> bool:
    return inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)


def _has_doc(obj) -> bool:
    return bool((getattr(obj, "__doc__", None) or "").strip())


def missing_docstrings(package: str = "jaxinfo") -> list[str]:
    """Dotted names of public modules, functions, classes and methods without a docstring.

    Covers every name in ``package.__all__`` and, in each public module, the functions and
    classes it defines and lists as public (its ``__all__``, or every name without a leading
    underscore), with the public methods those classes define.
    """
    missing: list[str] = []
    seen: set[int] = set()

    def check(obj, where: str) -> None:
        if id(obj) in seen or not _documentable(obj):
            return
        seen.add(id(obj))
        if not _has_doc(obj):
            missing.append(where)
        if inspect.isclass(obj):
            for name, member in vars(obj).items():
                if name.startswith("_"):
                    continue
                function = getattr(member, "__func__", member)  # static/class methods
                # an override may inherit the docstring of the method it overrides
                if inspect.isfunction(function) and not inspect.getdoc(getattr(obj, name)):
                    missing.append(f"{where}.{name}")

    for module in public_modules(package):
        if not _has_doc(module):
            missing.append(module.__name__)
        for name in _public_names(module):
            obj = getattr(module, name, None)
            if obj is None:
                continue
            defined_here = getattr(obj, "__module__", None) == module.__name__
            if module.__name__ == package or defined_here:
                check(obj, f"{module.__name__}.{name}")
    return sorted(set(missing))


# --------------------------------------------------------------------------------------------
# Generated pages


def api_reference_markdown() -> str:
    """Markdown with one ``::: jaxinfo.NAME`` block per public name, grouped by topic."""
    import jaxinfo

    public = list(jaxinfo.__all__)
    lines: list[str] = []
    listed: set[str] = set()
    groups = dict(API_GROUPS)
    groups["Other"] = [name for name in sorted(public) if not _in_groups(name)]
    for title, names in groups.items():
        present = [name for name in names if name in public and name not in listed]
        if not present:
            continue
        lines += [f"## {title}", ""]
        for name in present:
            listed.add(name)
            lines += [f"::: jaxinfo.{name}", "    options:", "      heading_level: 3", ""]
    for module in [*API_MODULES, *_modules_outside_namespace()]:
        lines += [
            f"## `{module}`",
            "",
            f"::: {module}",
            "    options:",
            "      heading_level: 3",
            "      show_root_heading: false",
            "",
        ]
    return "\n".join(lines)


def _modules_outside_namespace() -> list[str]:
    """Public modules that export something, none of it re-exported by ``jaxinfo``."""
    import jaxinfo

    exported = {id(getattr(jaxinfo, name)) for name in jaxinfo.__all__}
    found = []
    for module in public_modules():
        name = module.__name__
        if name in API_SKIP_MODULES or name in API_MODULES or name.startswith("jaxinfo.cli."):
            continue
        objects = [getattr(module, n, None) for n in _public_names(module)]
        objects = [obj for obj in objects if _documentable(obj)]
        if objects and not any(id(obj) in exported for obj in objects):
            found.append(name)
    return sorted(found)


def _in_groups(name: str) -> bool:
    return any(name in names for names in API_GROUPS.values())


def cli_reference_markdown() -> str:
    """The ``--help`` text of ``jaxinfo`` and of every verb, as Markdown sections."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # a stable width, whatever the terminal building the site
    try:
        from jaxinfo.cli import VERBS, build_parser

        parser = build_parser()
        subparsers = next(
            action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"
        )
        sections = ["### `jaxinfo`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name in VERBS:
            help_text = subparsers.choices[name].format_help().rstrip()
            sections += [f"### `jaxinfo {name}`", "", "```text", help_text, "```", ""]
        return "\n".join(sections)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


# --------------------------------------------------------------------------------------------
# MkDocs events


def on_config(config):
    """Fails the build if a public function, class or module lacks a docstring."""
    from mkdocs.exceptions import PluginError

    missing = missing_docstrings()
    if missing:
        raise PluginError(
            "public objects without a docstring (document them, or make them private with a "
            "leading underscore): " + ", ".join(missing)
        )
    return config


def on_page_markdown(markdown, page, config, files):
    """Expands the API and CLI reference markers."""
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_reference_markdown())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference_markdown())
    return markdown


MATHJAX_DIST = "django-static-mathjax"
MATHJAX_DEST = "javascripts/mathjax"


def mathjax_files() -> list[tuple[str, str]]:
    """(absolute source path, site path) of the MathJax files the site needs: the combined
    ``tex-mml-chtml.js`` component and the woff-v2 fonts of its CHTML output."""
    import importlib.metadata
    from pathlib import Path

    try:
        distribution = importlib.metadata.distribution(MATHJAX_DIST)
    except importlib.metadata.PackageNotFoundError:
        return []
    es5 = Path(distribution.locate_file("mathjax/static/mathjax/es5"))
    fonts = es5 / "output" / "chtml" / "fonts" / "woff-v2"
    wanted = [es5 / "tex-mml-chtml.js", *sorted(fonts.glob("*.woff"))]
    return [(str(path), f"{MATHJAX_DEST}/{path.relative_to(es5).as_posix()}") for path in wanted]


def on_files(files, config):
    """Adds the bundled MathJax files to the site (fails the build when they are missing)."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    found = mathjax_files()
    if not found:
        raise PluginError(
            f"MathJax is bundled from the {MATHJAX_DIST} wheel: pip install '.[docs]'"
        )
    for source, destination in found:
        files.append(File.generated(config, destination, abs_src_path=source))
    return files
