"""`python -m carbonlog.cli`: the same as the `carbonlog` command."""

import sys

from carbonlog.cli import main

sys.exit(main())
