"""``python -m vsm.reproduce.fig3 render RESULTS [--doc PATH]`` (:func:`vsm.reproduce.fig3.main`)."""

from .report import main

raise SystemExit(main())
