"""Where things live: the project checkout, the local Parquet store and the Dagster home.

`RSTAR_STORE` and `DAGSTER_HOME` override the defaults (warehouse/store and .dagster in the
checkout); both are made absolute.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = PROJECT_ROOT / "assets" / "prompts"
CONFIGS_DIR = PROJECT_ROOT / "assets" / "configs"
QUERIES_DIR = PROJECT_ROOT / "warehouse" / "queries"


def store_root() -> Path:
    return Path(os.environ.get("RSTAR_STORE") or PROJECT_ROOT / "warehouse" / "store").resolve()


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster").resolve()
