"""`python -m conformance RUNTIME`: run the suite against one runtime."""

import sys

from conformance.cli import main

sys.exit(main())
