"""``python -m router.cli``: the same as the ``trigger-router`` console script."""

import sys

from router.cli import main

sys.exit(main.main())
