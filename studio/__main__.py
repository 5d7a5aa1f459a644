"""`python -m studio`: the same as `deep-painting studio`."""

import sys

from studio.cli import main

sys.exit(main())
