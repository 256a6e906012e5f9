"""``python -m weightkit``: the same as the ``weightkit`` command."""

import sys

from .cli import main

sys.exit(main())
