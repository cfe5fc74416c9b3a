"""``python -m bundle``: the same command line as ``advseg`` (see :mod:`bundle.cli`)."""

import sys

from bundle.cli import main

sys.exit(main())
