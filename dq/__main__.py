"""``python -m dq``: see :mod:`dq.cli`."""

import sys

from dq.cli import main

sys.exit(main())
