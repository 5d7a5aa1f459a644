"""`python -m gallery`: the same as `deep-painting gallery`."""

import sys

from gallery.cli import main

sys.exit(main())
