"""``python -m fxprune``: the ``fxprune`` command line (:func:`fxprune.cli.main`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
