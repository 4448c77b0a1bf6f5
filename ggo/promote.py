"""``python -m ggo.promote``: promote the best finished run to the model registry (the code lives in :mod:`ggo.ship.promote`)."""

import sys

from ggo.ship.promote import main

if __name__ == "__main__":
    sys.exit(main())
