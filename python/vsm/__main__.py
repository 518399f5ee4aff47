"""``python -m vsm``: the vsm command line (:func:`vsm.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
