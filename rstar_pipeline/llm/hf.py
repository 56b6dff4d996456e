"""The `transformers` backend: in-process generation and PPM scoring, CPU or GPU, batched.

`TransformersGenerator` left-pads many prompts into one `generate` call (sorted by length, in chunks
of `batch_size` prompts, `n` samples each), honours stop strings (a stop string that is one token,
as the step tags are, stops generation exactly; others go to transformers' `stop_strings`), and is
seeded. `TransformersScorer` reads the PPM's scalar head at the last token of each prefix and
returns `ppm_readout(raw)`; long prefixes are cut at the start, so the step being judged is kept.
Neither is thread-safe (torch's random state and the fast tokenizer's padding settings are shared
state): call one from one thread at a time.
"""

from __future__ import annotations

from typing import Sequence

from rstar_pipeline.llm.base import Completion, SamplingConfig, cut_at_stop, ppm_readout


def _torch_setup(device: str, dtype: str):
    import torch

    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return torch, device, {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16,
                           "float16": torch.float16}[dtype]


class TransformersGenerator:
    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64,
                 max_prompt_tokens: int = 2048):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch, self.device, torch_dtype = _torch_setup(device, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side, self.tokenizer.truncation_side = "left", "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.batch_size, self.max_prompt_tokens = batch_size, max_prompt_tokens

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths pad less
        results: dict[int, list[Completion]] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            outputs = self._generate_chunk([prompts[i] for i in chunk], sampling, seed=sampling.seed + start)
            results.update(zip(chunk, outputs))
        return [results[i] for i in range(len(prompts))]

    def _generate_chunk(self, prompts: list[str], sampling: SamplingConfig, seed: int) -> list[list[Completion]]:
        torch, tok = self.torch, self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_prompt_tokens,
                  add_special_tokens=False).to(self.device)
        stop_ids, stop_strings = self._stops(sampling.stop)
        greedy = sampling.temperature == 0
        kwargs = dict(max_new_tokens=sampling.max_tokens, pad_token_id=tok.pad_token_id,
                      eos_token_id=[*stop_ids, tok.eos_token_id], num_return_sequences=1 if greedy else sampling.n,
                      do_sample=not greedy)
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        if stop_strings:
            kwargs.update(stop_strings=stop_strings, tokenizer=tok)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1]:].tolist()
        per_prompt = 1 if greedy else sampling.n
        completions = [self._completion(tokens, stop_ids, sampling) for tokens in new_tokens]
        grouped = [completions[i * per_prompt:(i + 1) * per_prompt] for i in range(len(prompts))]
        return [group * sampling.n if greedy else group for group in grouped]

    def _stops(self, stop: Sequence[str]) -> tuple[dict[int, str], list[str]]:
        """Stop strings that are a single token stop by id (exact); the rest by text."""
        ids, strings = {}, []
        for s in stop:
            encoded = self.tokenizer.encode(s, add_special_tokens=False)
            if len(encoded) == 1:
                ids.setdefault(encoded[0], s)
            else:
                strings.append(s)
        return ids, strings

    def _completion(self, tokens: list[int], stop_ids: dict[int, str], sampling: SamplingConfig) -> Completion:
        tok = self.tokenizer
        for k, t in enumerate(tokens):
            if t in stop_ids:
                return Completion(tok.decode(tokens[:k]), "stop", stop_ids[t])
            if t in (tok.eos_token_id, tok.pad_token_id):
                return cut_at_stop(tok.decode(tokens[:k]), sampling.stop)
        text = tok.decode(tokens)
        done = cut_at_stop(text, sampling.stop)
        return done if done.stop else Completion(text, "length")


class TransformersScorer:
    """PPM scores with a `...ForSequenceClassification` checkpoint (one label: the raw reward)."""

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64,
                 max_tokens: int = 2048):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch, self.device, torch_dtype = _torch_setup(device, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side, self.tokenizer.truncation_side = "right", "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(model, dtype=torch_dtype).to(self.device)
        self.model.eval()
        self.batch_size, self.max_tokens = batch_size, max_tokens

    def raw(self, prefixes: Sequence[str]):
        """The value head's raw outputs, one per prefix, as a float tensor."""
        torch = self.torch
        chunks = []
        for start in range(0, len(prefixes), self.batch_size):
            enc = self.tokenizer(list(prefixes[start:start + self.batch_size]), return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_tokens, add_special_tokens=False)
            with torch.no_grad():
                chunks.append(self.model(**enc.to(self.device)).logits[:, 0].float().cpu())
        return torch.cat(chunks) if chunks else torch.zeros(0)

    def score(self, prefixes: Sequence[str]) -> list[float]:
        return ppm_readout(self.raw(prefixes)).tolist()
