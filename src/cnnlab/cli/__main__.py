"""``python -m cnnlab.cli`` (and ``torchrun -m cnnlab.cli``) run the ``cnnlab`` command."""

import sys

from cnnlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
