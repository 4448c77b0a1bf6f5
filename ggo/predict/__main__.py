"""``python -m ggo.predict``."""

import sys

from ggo.predict.cli import main

sys.exit(main())
