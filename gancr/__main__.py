"""``python -m gancr`` (and ``torchrun -m gancr``) runs the ``gancr`` command."""

import sys

from gancr.cli import main

sys.exit(main())
