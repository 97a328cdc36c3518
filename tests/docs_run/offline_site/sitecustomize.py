"""On PYTHONPATH for the docs' bash commands only: every Python they start (the `carbonlog`
command) refuses connections to other hosts and says so, as runner.py does for python blocks."""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))
from runner import refuse_the_network  # noqa: E402

sys.path.pop()
refuse_the_network()
