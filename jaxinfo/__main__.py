"""``python -m jaxinfo``: the same as the ``jaxinfo`` console command."""

import sys

from jaxinfo.cli import main

if __name__ == "__main__":
    sys.exit(main())
