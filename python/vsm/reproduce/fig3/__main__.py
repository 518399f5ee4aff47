"""``python -m vsm.reproduce.fig3 render RESULTS [--doc PATH]`` (:func:`vsm.reproduce.fig3.main`)."""

from .markdown import main

raise SystemExit(main())
