"""``python -m ggo.compare``: the paired difference of two runs, with a 95% interval over patients (the code lives in :mod:`ggo.evaluation.compare`)."""

import sys

from ggo.evaluation.compare import main

if __name__ == "__main__":
    sys.exit(main())
