"""``python -m fxprune.cli``: the ``fxprune`` command line (:func:`fxprune.cli.main`)."""
import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
