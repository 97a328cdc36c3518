"""`import amdsmi` answered by carbonlog's AMD SMI fake, for a process with no AMD GPU.

Put this directory first on sys.path (or PYTHONPATH); configure the fake with the
CARBONLOG_FAKE_AMDSMI_* variables documented in tests/fakes/amdsmi_fake.py.
`amdsmi.FAKE` is the FakeAmdSmi behind it.
"""

import sys
from pathlib import Path

_repo = str(Path(__file__).resolve().parents[3])
if _repo not in sys.path:
    sys.path.append(_repo)

from tests.fakes.amdsmi_fake import from_env  # noqa: E402

FAKE = from_env()


def __getattr__(name):
    return getattr(FAKE, name)
