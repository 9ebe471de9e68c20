"""`python -m worker` with the fault-test plate engine registered (tests/faults only).

The supervisor starts its children as `python -m worker --child`; here they are started
through this script instead, so that each child has the test engine registered too.
"""

import subprocess
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imagescan.analyzers import PLATE_ENGINES

PLATE_ENGINES["fault"] = "tests.faults.engines:FaultPlates"

import worker.__main__ as entry


class _ChildThroughThisScript(subprocess.Popen):
    def __init__(self, args, *rest, **options):
        if list(args[1:3]) == ["-m", "worker"]:
            args = [args[0], str(Path(__file__).resolve()), *args[3:]]
        super().__init__(args, *rest, **options)


entry.subprocess = types.SimpleNamespace(Popen=_ChildThroughThisScript)

if __name__ == "__main__":
    sys.exit(entry.main())
