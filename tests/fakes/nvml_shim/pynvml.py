"""`import pynvml` answered by carbonlog's NVML fake, for subprocesses (DDP ranks, torchrun).

Put this directory first on PYTHONPATH; configure the fake with the CARBONLOG_FAKE_NVML_*
variables documented in tests/fakes/pynvml_fake.py. `pynvml.FAKE` is the FakeNvml behind it.
"""

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parent.parent / "pynvml_fake.py"
_spec = importlib.util.spec_from_file_location("carbonlog_pynvml_fake", _path)
_fake = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fake  # dataclasses look their module up while the file executes
_spec.loader.exec_module(_fake)

FAKE = _fake.from_env()


def __getattr__(name):
    return getattr(FAKE, name)
