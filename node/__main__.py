"""``python -m cairn.node``: the same as ``cairn node``."""

import sys

from cairn.node import main

sys.exit(main(sys.argv[1:]))
