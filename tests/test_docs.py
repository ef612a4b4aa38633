"""The documentation: every public object has a docstring, the code in the pages runs, the
documented commands parse, and ``mkdocs build --strict`` passes (and fails without docstrings).

Python blocks of a page run in order in one fresh interpreter, in a temporary directory, with
``--8<-- "file"`` snippets (the tutorial scripts) expanded as MkDocs does. A block preceded by
``<!-- skip-test: reason -->`` is shown but not run (fragments, cluster-only code).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)")
SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$')
SKIP_MARK = "<!-- skip-test"


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_blocks(page: Path):
    """(language, code, skipped) of each fenced block of a Markdown page, snippets expanded."""
    blocks, lines = [], page.read_text(encoding="utf-8").splitlines()
    previous, i = "", 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        language, body = match[1], []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            snippet = SNIPPET.match(lines[i])
            if snippet:
                body.append((DOCS / snippet[1]).read_text(encoding="utf-8"))
            else:
                body.append(lines[i])
            i += 1
        blocks.append((language, "\n".join(body), previous.startswith(SKIP_MARK)))
        previous, i = "", i + 1
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def pages_with_python() -> list[str]:
    return [
        str(page.relative_to(DOCS))
        for page in pages()
        if any(lang == "python" and not skip for lang, _, skip in code_blocks(page))
    ]


@pytest.fixture(scope="module")
def docs_env(tmp_path_factory):
    env = dict(os.environ)
    for name in ("XLA_FLAGS", "JAX_ENABLE_X64", "MPLBACKEND"):
        env.pop(name, None)
    env.update(
        JAX_PLATFORMS="cpu",
        MPLBACKEND="Agg",
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("xla_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    return env


# --------------------------------------------------------------------------------------------
# Docstrings and generated references


def test_every_public_object_has_a_docstring():
    missing = load_hooks().missing_docstrings()
    assert missing == [], f"public objects without a docstring: {missing}"


def test_the_docstring_check_finds_an_undocumented_function(tmp_path, monkeypatch):
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""Doc."""\nfrom fakepkg.mod import good, bad\n')
    (package / "mod.py").write_text(
        textwrap.dedent(
            '''
            """A module."""

            def good():
                """Documented."""

            def bad():
                pass

            class Thing:
                """Documented class."""

                def method(self):
                    pass

            def _private():
                pass
            '''
        )
    )
    (package / "_hidden.py").write_text("def undocumented():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    missing = load_hooks().missing_docstrings("fakepkg")
    assert missing == ["fakepkg.bad", "fakepkg.mod.Thing.method"]


def test_the_build_fails_on_a_missing_docstring(monkeypatch):
    from mkdocs.exceptions import PluginError

    hooks = load_hooks()
    monkeypatch.setattr(hooks, "missing_docstrings", lambda: ["jaxinfo.undocumented"])
    with pytest.raises(PluginError, match=r"jaxinfo\.undocumented"):
        hooks.on_config({})


def test_api_reference_covers_every_public_name():
    import jaxinfo

    markdown = load_hooks().api_reference_markdown()
    for name in jaxinfo.__all__:
        assert f"::: jaxinfo.{name}\n" in markdown, name
    assert "::: jaxinfo.io\n" in markdown and "::: jaxinfo.datasets\n" in markdown


def test_cli_reference_has_every_verb():
    from jaxinfo.cli import VERBS

    markdown = load_hooks().cli_reference_markdown()
    for name in VERBS:
        assert f"### `jaxinfo {name}`" in markdown
        assert f"usage: jaxinfo {name}" in markdown


def test_every_tutorial_script_is_shown_in_a_page():
    included = {
        snippet[1]
        for page in pages()
        for line in page.read_text(encoding="utf-8").splitlines()
        if (snippet := SNIPPET.match(line))
    }
    scripts = {str(path.relative_to(DOCS)) for path in (DOCS / "tutorials").glob("*.py")}
    assert scripts and scripts <= included, scripts - included


# --------------------------------------------------------------------------------------------
# The code of the pages runs


@pytest.mark.parametrize("page", pages_with_python())
def test_page_code_runs(page, tmp_path, docs_env, precision):
    """The page's Python blocks run as a user would: in the default float32, and with
    ``JAX_ENABLE_X64=1`` in the float64 run."""
    env = dict(docs_env, JAX_ENABLE_X64="1" if precision == "float64" else "0")
    code = "\n\n".join(
        body for lang, body, skip in code_blocks(DOCS / page) if lang == "python" and not skip
    )
    script = tmp_path / "page.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{page}:\n{result.stdout}\n{result.stderr}"


def documented_commands() -> list[tuple[str, str]]:
    """(page, command line) of every ``jaxinfo ...`` line in shell blocks."""
    found = []
    for page in pages():
        for lang, body, _ in code_blocks(page):
            if lang not in ("console", "bash", "sh", "shell"):
                continue
            for line in body.splitlines():
                line = line.strip().removeprefix("$ ")
                words = shlex.split(line, comments=True)
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                    words = words[1:]  # VAR=value prefixes
                if words and words[0] == "jaxinfo":
                    found.append((str(page.relative_to(DOCS)), shlex.join(words)))
    return found


def test_documented_commands_parse():
    from jaxinfo.cli import build_parser

    commands = documented_commands()
    assert any("entropy --example" in command for _, command in commands)
    parser = build_parser()
    for page, command in commands:
        words = shlex.split(command)[1:]
        if "--help" in words or "--version" in words:
            continue
        try:
            args = parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"{page}: cannot parse {command!r}")
        assert args.verb


# --------------------------------------------------------------------------------------------
# The site builds


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="jaxinfo.entropy"' in api
    cli = (tmp_path / "cli" / "index.html").read_text(encoding="utf-8")
    assert "usage: jaxinfo dh" in cli
    _assert_offline_site(tmp_path)


REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//", re.IGNORECASE)


def _assert_offline_site(site: Path) -> None:
    """Issue 13: the site works offline (no remote script, MathJax bundled), examples render as
    code and defaults as numbers."""
    remote = [
        str(page.relative_to(site))
        for page in site.rglob("*.html")
        if REMOTE_SCRIPT.search(page.read_text(encoding="utf-8"))
    ]
    assert remote == [], f"pages loading a remote script: {remote}"
    assert (site / "javascripts" / "mathjax" / "tex-mml-chtml.js").stat().st_size > 100_000
    fonts = site / "javascripts" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("MathJax_Main-Regular.woff"))
    concepts = (site / "concepts" / "index.html").read_text(encoding="utf-8")
    assert 'src="../javascripts/mathjax/tex-mml-chtml.js"' in concepts
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "DEFAULT_K" not in api and "DEFAULT_BANDWIDTH" not in api
    assert "k: int = 32" in re.sub(r"<[^>]+>", "", api)
    assert 'class="admonition example"' not in api  # Example: sections render as code
