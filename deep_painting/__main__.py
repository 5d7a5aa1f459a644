import sys

from deep_painting.cli import main

sys.exit(main())
