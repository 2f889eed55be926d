"""`python -m microlm`: the same command line as `microlm`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
