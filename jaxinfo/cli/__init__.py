"""The ``jaxinfo`` console command.

Verbs (``jaxinfo VERB --help`` for each):

================== ==================================================================
``entropy``        H, D and log N of a dataset (per input, per ``--by`` group, and all)
``dh``             δH of every test environment against a reference set
``overlap``        fraction of test environments covered by a reference set
``descriptors``    compute descriptors and save them to ``.npz``
``bandwidth``      h from an atomic volume or from the structures of a file
``learning-curve`` H against sample size, several random draws without replacement
``compress``       select a subset of structures (``jaxinfo.select``)
``example``        where the bundled example dataset is and what it holds
================== ==================================================================

Inputs are anything :mod:`ase.io` reads, with an optional frame selection (``md.xyz@0:100:2``),
several files at once, or precomputed descriptor files (``.npy``/``.npz``). ``--example`` uses the
bundled Cu dataset, so ``jaxinfo entropy --example`` runs with no data of your own.

Errors a user can act on (missing or unparsable file, empty selection, bad parameter,
incompatible descriptor widths, an existing output file) print one line
``jaxinfo: error: ...`` on stderr and exit with status 2; ``--debug`` shows the traceback.

Every verb is one function registered in a table (:data:`VERBS`), built from shared option
groups; see ``jaxinfo/cli/_verbs.py`` to add one.
"""

from __future__ import annotations

from jaxinfo.cli import _verbs  # noqa: F401  (registers the verbs)
from jaxinfo.cli._app import VERBS, build_parser, main

__all__ = ["VERBS", "build_parser", "main"]
