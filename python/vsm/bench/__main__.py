"""``python -m vsm.bench``: the same as ``vsm bench`` (:func:`vsm.bench.main`, errors reported by
:func:`vsm.cli.main`)."""

import sys

from ..cli import main

raise SystemExit(main(["bench", *sys.argv[1:]]))
