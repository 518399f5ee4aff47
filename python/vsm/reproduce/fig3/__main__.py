"""``python -m vsm.reproduce.fig3 render RESULTS [--doc PATH]`` (:func:`vsm.reproduce.fig3.main`;
errors reported as by the ``vsm`` command line)."""

from ...cli import report_errors
from .markdown import main

raise SystemExit(report_errors(main))
