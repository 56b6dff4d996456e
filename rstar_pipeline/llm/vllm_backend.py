"""The vLLM backend: in-process generation and PPM scoring on GPUs, behind the same contracts as
`rstar_pipeline.llm.hf` (read that module for them).

`VLLMGenerator` runs the policy with `vllm.LLM` (prefix caching on: MCTS prompts share long
prefixes) and `VLLMScorer` runs the PPM checkpoint, a `...ForSequenceClassification` with one label,
through vLLM's pooling runner. Prompts are tokenised here, as the transformers backend does it (no
special tokens added, long prompts cut at the start), and handed to vLLM as token ids.

vLLM is GPU-only and an optional dependency (the `gpu` extra): it is imported when one of these
classes is built, never when this module is. Nothing here runs in CPU-only CI; the OpenAI backend
(`openai_api`, tested against a stand-in server) covers `vllm serve`.

vLLM API this relies on (vLLM >= 0.22; checked against its source and docs):
- `LLM(model, runner="pooling")` loads a `*ForSequenceClassification` checkpoint as a classifier
  (`task="classify"` was the older spelling, since removed); `LLM.classify(prompts, pooling_params=...)`
  returns one `ClassificationRequestOutput` per prompt whose `outputs.probs` holds the head's outputs.
- The head is pooled at the last token, as transformers does for decoder-only classifiers.
- For one label the default activation is a sigmoid (`PoolerClassify`: sigmoid when num_labels < 2,
  softmax otherwise; identity only for `problem_type="regression"`), so "probs" would not be the raw
  reward. `PoolingParams(use_activation=False)` returns the raw output, on which `ppm_readout` is applied.
- With `n > 1` and a seed, vLLM seeds sample j with `seed + j`; each prompt here gets
  `seed + i * n`, so no two samples of a call share a seed (duplicated prompts included).
"""

from __future__ import annotations

from typing import Sequence

from rstar_pipeline.llm.base import Completion, SamplingConfig, ppm_readout

INSTALL_HINT = "vLLM is not installed; the vllm backend needs the gpu extra: pip install -e '.[gpu]'"


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from e
    return vllm


def _token_prompts(tokenizer, texts: Sequence[str], max_tokens: int) -> list[dict]:
    """Token-id prompts, tokenised as the transformers backend does (exact same ids reach the model)."""
    return [{"prompt_token_ids": tokenizer.encode(t, add_special_tokens=False)[-max_tokens:]} for t in texts]


class VLLMGenerator:
    def __init__(self, model: str, seed: int = 0, gpu_memory_utilization: float = 0.5, max_model_len: int = 4096,
                 tensor_parallel_size: int = 1, dtype: str = "auto", max_prompt_tokens: int = 2048):
        vllm = _import_vllm()
        self._sampling_params = vllm.SamplingParams
        self.llm = vllm.LLM(model=model, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                            enable_prefix_caching=True)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_prompt_tokens = max_prompt_tokens

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if not prompts:
            return []
        greedy = sampling.temperature == 0
        params = [self._params(sampling, 1 if greedy else sampling.n, seed=sampling.seed + i * sampling.n)
                  for i in range(len(prompts))]
        outputs = self.llm.generate(_token_prompts(self.tokenizer, prompts, self.max_prompt_tokens), params,
                                    use_tqdm=False)
        groups = [[_completion(o) for o in out.outputs] for out in outputs]  # in prompt order
        return [group * sampling.n if greedy else group for group in groups]

    def _params(self, sampling: SamplingConfig, n: int, seed: int):
        # skip_special_tokens=False keeps the step tags in the text, where they match as stop strings;
        # no spaces around them, so that the text is what tokenizer.decode gives (the hf backend's).
        return self._sampling_params(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                                     max_tokens=sampling.max_tokens, stop=list(sampling.stop), seed=seed,
                                     skip_special_tokens=False, spaces_between_special_tokens=False)


def _completion(output) -> Completion:
    # stop_reason: the stop string matched, a stop token id, or None (EOS, length).
    stop = output.stop_reason if isinstance(output.stop_reason, str) else None
    finish = "length" if output.finish_reason == "length" else "stop"
    return Completion(output.text, finish, stop if finish == "stop" else None)


class VLLMScorer:
    """PPM scores with a one-label `...ForSequenceClassification` checkpoint: `ppm_readout(raw)`."""

    def __init__(self, model: str, gpu_memory_utilization: float = 0.3, max_model_len: int = 4096,
                 tensor_parallel_size: int = 1, dtype: str = "auto", max_tokens: int = 2048):
        vllm = _import_vllm()
        self._raw_output = vllm.PoolingParams(use_activation=False)  # the head's value, not its sigmoid
        self.llm = vllm.LLM(model=model, runner="pooling", gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size, dtype=dtype)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_tokens = max_tokens

    def raw(self, prefixes: Sequence[str]) -> list[float]:
        """The value head's raw outputs, one per prefix; long prefixes lose their start, not the step."""
        if not prefixes:
            return []
        outputs = self.llm.classify(_token_prompts(self.tokenizer, prefixes, self.max_tokens),
                                    pooling_params=self._raw_output, use_tqdm=False)
        return [float(out.outputs.probs[0]) for out in outputs]

    def score(self, prefixes: Sequence[str]) -> list[float]:
        return [ppm_readout(r) for r in self.raw(prefixes)]
