"""``python -m sgdkit.grading``: see ``sgdkit.grading``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
