"""``python -m ggo.report PARENT``: a sweep's report as one HTML page (the code lives in :mod:`ggo.sweeps.report`)."""

import sys

from ggo.sweeps.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
