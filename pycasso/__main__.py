import sys

from pycasso.worker import main

sys.exit(main())
