"""spark-ml-pipeline's library: the code behind the notebooks, the API's checks and the job.

Importing ``lib`` is deliberately cheap: it starts no Spark session and loads no CatBoost.
Import the submodules you need (``lib.data``, ``lib.training``, ``lib.predict``...).
"""

import sys
import time
from pathlib import Path

__all__ = ["__version__", "forget_if_edited"]

__version__ = "0.1.0"

_LOADED_AT = time.time()  # when this process imported lib: a source saved later is newer


def forget_if_edited() -> bool:
    """Forget this process's ``lib`` modules when a source file of lib was saved after they
    were loaded; returns whether it did. The next ``import lib...`` then reads the new code.

    For long-lived processes that run lib's code job after job: the Python workers of the
    local Spark Connect server, which every session shares (lib.connect_driver). A learner
    who edits lib/scoring.py and runs notebook 04 again gets the edit, as a new kernel does.
    A worker function calls it first, before it imports anything else from lib.
    """
    root = Path(__file__).parent
    try:
        newest = max(path.stat().st_mtime for path in root.rglob("*.py"))
    except (OSError, ValueError):  # a file gone mid-walk, or no sources (a zip): keep all
        return False
    if newest <= _LOADED_AT:
        return False
    for name in [n for n in sys.modules if n == __name__ or n.startswith(f"{__name__}.")]:
        del sys.modules[name]
    return True
