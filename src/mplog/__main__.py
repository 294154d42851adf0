"""``python -m mplog``: see :mod:`mplog.cli`."""

import sys

from .cli import main

sys.exit(main())
