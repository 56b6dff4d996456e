"""Generation and PPM scoring behind two small protocols; the search sees nothing else.

Backends: the mini world's bootstrap teacher (`rstar_pipeline.miniworld.teacher`). Model
backends (transformers, vLLM, OpenAI-compatible servers) plug in behind the same protocols.
"""

from rstar_pipeline.llm.base import Completion, Generator, PPMScorer, SamplingConfig

__all__ = ["Completion", "Generator", "PPMScorer", "SamplingConfig"]
