"""``python -m ggo.ship.predict`` (also ``python -m ggo.predict``)."""

import sys

from ggo.ship.predict.cli import main

sys.exit(main())
