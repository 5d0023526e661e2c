"""Imported first by the Python bench scripts: puts the black-box test harness
(tests/blackbox) and the Qlik Sense simulator (tests/qlik-sim) on the import
path, and makes BUTLERD default to ../src/butlerd next to this directory, as the
harness reads it when it starts a daemon. HERE is this directory."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for _d in ("qlik-sim", "blackbox"):
    _p = os.path.join(HERE, "..", "tests", _d)
    if _p not in sys.path:
        sys.path.insert(0, _p)
if not os.environ.get("BUTLERD"):
    os.environ["BUTLERD"] = os.path.join(HERE, "..", "src", "butlerd")
