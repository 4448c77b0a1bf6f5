"""``python -m ggo.runs``: end the runs a hard kill left RUNNING (the code lives in :mod:`ggo.tracking.clean`)."""

import sys

from ggo.tracking.clean import main

if __name__ == "__main__":
    sys.exit(main())
