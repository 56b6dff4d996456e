"""Where the shared benchmark and training files live: ../shared/data beside the checkout, or
$RSTAR_SHARED_DATA. Tests read them in place and skip, saying why, when they are absent."""

import os
from pathlib import Path

import pytest

from rstar_pipeline.paths import PROJECT_ROOT

SHARED_DATA = Path(os.environ.get("RSTAR_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data")
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                  reason=f"shared data folder {SHARED_DATA} is absent (set RSTAR_SHARED_DATA)")
