"""``python -m ggo.predict``: masks, overlays and a CSV row per image from the registered model
(the code lives in :mod:`ggo.ship.predict`)."""

import sys

from ggo.ship.predict.cli import main

if __name__ == "__main__":
    sys.exit(main())
