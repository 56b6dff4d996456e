"""Problem shards as Dagster partitions. The shard count is a deployment setting
($RSTAR_NUM_SHARDS, default 8): a problem's shard is a stable hash of its id modulo that count."""

import os
import warnings

from dagster import BackfillPolicy, BetaWarning, StaticPartitionsDefinition

from rstar_pipeline.stages import shard_keys

NUM_SHARDS = int(os.environ.get("RSTAR_NUM_SHARDS", "8"))
SHARDS = shard_keys(NUM_SHARDS)
shards = StaticPartitionsDefinition(SHARDS)

# backfill_policy is beta in Dagster 1.13; the behaviour we rely on (one run per shard) is stable.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)

# A backfill launches one run per shard (the scale-out unit); `round_r` jobs run a whole range in one run.
one_run_per_shard = BackfillPolicy.multi_run(max_partitions_per_run=1)

ALL_SHARDS_TAGS = {"dagster/asset_partition_range_start": SHARDS[0],
                   "dagster/asset_partition_range_end": SHARDS[-1]}
