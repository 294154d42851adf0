"""``python -m mplog``: see :mod:`mplog._cli`."""

import sys

from ._cli import main

sys.exit(main())
