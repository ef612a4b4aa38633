"""``python -m jaxinfo.cli``: the same as the ``jaxinfo`` console command."""

import sys

from jaxinfo_launch import main

if __name__ == "__main__":
    sys.exit(main())
