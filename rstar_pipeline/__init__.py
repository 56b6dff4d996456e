"""rstar-pipeline: the rStar-Math self-evolution recipe as a Dagster data pipeline."""

__version__ = "0.1.0"
