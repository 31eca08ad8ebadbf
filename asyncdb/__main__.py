"""``python -m asyncdb``: the same commands as the ``asyncdb`` console script."""

import sys

from asyncdb.cli import main

if __name__ == "__main__":
    sys.exit(main())
