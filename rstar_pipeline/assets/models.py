"""The `models/base` asset: the base model every round's policy is fine-tuned from."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from rstar_pipeline import checkpoints
from rstar_pipeline.assets.config import dagster_config, to_core
from rstar_pipeline.assets.resources import WarehouseResource

BaseModelRunConfig = dagster_config(checkpoints.BaseModelConfig)


@asset(key=AssetKey(["models", "base"]), group_name="models", kinds={"pytorch"})
def base_model(context: AssetExecutionContext, config: BaseModelRunConfig, warehouse: WarehouseResource) -> MaterializeResult:
    """The base model: the mini world's tiny student (tokenizer trained here, random weights) or an
    external Hugging Face model registered by name."""
    ckpt, built = checkpoints.build_base(warehouse.store(), to_core(config, checkpoints.BaseModelConfig))
    context.log.info(f"base model: {'built' if built else 'kept'} {ckpt.path}")
    facts = {k: v for k, v in ckpt.metrics.items() if isinstance(v, (int, float))}
    return MaterializeResult(metadata={"path": MetadataValue.path(ckpt.path), "built": built, **facts,
                                       "identity": ckpt.identity})
