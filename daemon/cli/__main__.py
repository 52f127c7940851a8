"""`python -m daemon.cli` runs the `lmd` command line."""

import sys

from daemon.cli import main

sys.exit(main())
