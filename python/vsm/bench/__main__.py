"""``python -m vsm.bench``: the same as ``vsm bench`` (:func:`vsm.bench.main`)."""

from . import main

raise SystemExit(main())
