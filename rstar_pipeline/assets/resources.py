"""Dagster resources: the Parquet warehouse (it owns every path the assets write)."""

from dagster import ConfigurableResource

from rstar_pipeline.paths import store_root
from rstar_pipeline.warehouse.store import Warehouse


class WarehouseResource(ConfigurableResource):
    """The local Parquet store (default warehouse/store in the checkout, or $RSTAR_STORE)."""

    root: str = ""

    def store(self) -> Warehouse:
        return Warehouse(self.root or store_root())
