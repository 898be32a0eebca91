"""``python -m service`` is the ``herald`` command."""

import sys

from .cli import main

sys.exit(main())
