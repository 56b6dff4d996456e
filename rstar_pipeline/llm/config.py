"""Which generation and scoring backend a round uses, and building one from its config.

Backends: `teacher` (the mini world's bootstrap teacher, round 1 on the embedded default),
`transformers` (in-process, CPU or GPU), `vllm` (GPU, prefix caching) and `openai` (any
OpenAI-compatible completions server, e.g. `vllm serve`). Model backends import their libraries
only when chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BACKENDS = ("teacher", "transformers", "vllm", "openai")


@dataclass(frozen=True)
class GeneratorConfig:
    backend: str = field(default="teacher", metadata={"help": "teacher, transformers, vllm or openai"})
    model: str = field(default="", metadata={
        "help": "checkpoint folder, hub id, or round_<r>/policy; '' = the previous round's policy"})
    device: str = field(default="auto", metadata={"help": "transformers: cpu, cuda or auto"})
    dtype: str = field(default="auto", metadata={"help": "transformers/vllm: auto, float32, bfloat16, float16"})
    batch_size: int = field(default=64, metadata={"help": "transformers: prompts per generate call"})
    base_urls: tuple[str, ...] = field(default=(), metadata={"help": "openai: server URLs to spread requests over"})
    max_concurrency: int = field(default=16, metadata={"help": "openai: requests in flight"})
    gpu_memory_utilization: float = field(default=0.5, metadata={"help": "vllm: share of GPU memory for the policy"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm: GPUs per model"})

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"generator backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.backend == "openai" and not self.base_urls:
            raise ValueError("generator backend openai needs base_urls")


@dataclass(frozen=True)
class ScorerConfig:
    backend: str = field(default="transformers", metadata={"help": "transformers or vllm"})
    model: str = field(default="", metadata={
        "help": "PPM checkpoint folder or round_<r>/ppm; '' = the previous round's PPM"})
    device: str = field(default="auto", metadata={"help": "transformers: cpu, cuda or auto"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16, float16"})
    batch_size: int = field(default=64, metadata={"help": "prefixes per forward pass"})
    gpu_memory_utilization: float = field(default=0.4, metadata={"help": "vllm: share of GPU memory for the PPM"})

    def __post_init__(self):
        if self.backend not in ("transformers", "vllm"):
            raise ValueError(f"scorer backend must be transformers or vllm, not {self.backend!r}")


def make_generator(config: GeneratorConfig, model_path: str = "", teacher=None):
    """A Generator for `config`; `model_path` is the resolved checkpoint, `teacher` the teacher config."""
    if config.backend == "teacher":
        from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig

        return BootstrapTeacher(teacher or TeacherConfig())
    if config.backend == "transformers":
        from rstar_pipeline.llm.hf import TransformersGenerator

        return TransformersGenerator(model_path, device=config.device, dtype=config.dtype,
                                     batch_size=config.batch_size)
    if config.backend == "vllm":
        from rstar_pipeline.llm.vllm_backend import VLLMGenerator

        return VLLMGenerator(model_path, gpu_memory_utilization=config.gpu_memory_utilization,
                             tensor_parallel_size=config.tensor_parallel_size, dtype=config.dtype)
    from rstar_pipeline.llm.openai_api import OpenAIGenerator

    return OpenAIGenerator(list(config.base_urls), model=model_path, max_concurrency=config.max_concurrency)


def make_scorer(config: ScorerConfig, model_path: str):
    if config.backend == "transformers":
        from rstar_pipeline.llm.hf import TransformersScorer

        return TransformersScorer(model_path, device=config.device, dtype=config.dtype, batch_size=config.batch_size)
    from rstar_pipeline.llm.vllm_backend import VLLMScorer

    return VLLMScorer(model_path, gpu_memory_utilization=config.gpu_memory_utilization, dtype=config.dtype)
