"""``python -m ggo.join``: one cross-validation parent run from CV rows of one recipe trained with other seeds (the code lives in :mod:`ggo.sweeps.join`)."""

import sys

from ggo.sweeps.join import main

if __name__ == "__main__":
    sys.exit(main())
