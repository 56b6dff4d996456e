"""The `transformers` backend: in-process generation and PPM scoring, CPU or GPU, batched.

`TransformersGenerator` left-pads many prompts into one batch (sorted by length, in chunks of
`batch_size` prompts, `n` samples each) and decodes them with the model's KV cache in a loop of its own,
honours stop strings (a stop string that is one token, as the step tags are, stops generation exactly;
others are found in the decoded text), and is seeded. `TransformersScorer` reads the PPM's scalar head
at the last token of each prefix and returns `ppm_readout(raw)`; long prefixes are cut at the start, so
the step being judged is kept. Texts of one call that begin alike (a search scores a node's children:
the question and the steps so far, then one step each) run their shared start once: MCTS's PPM time
1.73x less (bench/evaluation.py), the outputs equal to scoring each text whole up to float rounding.
Neither is thread-safe (torch's random state and the fast tokenizer's padding settings are shared
state): call one from one thread at a time.
"""

from __future__ import annotations

import functools
import inspect
from typing import Sequence

from rstar_pipeline.llm.base import Completion, SamplingConfig, cut_at_stop, ppm_readout


@functools.cache
def _preallocated_layer():
    """A KV-cache layer that appends in place. transformers' `DynamicLayer` concatenates every new token's
    keys and values onto the whole cache (`torch.cat`), so decoding L tokens copies O(L^2) memory; here the
    cache lives in a buffer with spare room (grown by `CHUNK` tokens at a time) and each step writes one
    position and hands attention a view of the filled part."""
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        CHUNK = 256

        def lazy_initialization(self, key_states, value_states) -> None:
            self.device, self.length, self.is_initialized = key_states.device, 0, True
            self._k = self._v = None

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if self._k is None or end > self._k.shape[-2]:
                self._k, self._v = self._grown(self._k, key_states, end), self._grown(self._v, value_states, end)
            self._k[..., self.length:end, :] = key_states
            self._v[..., self.length:end, :] = value_states
            self.length = end
            self._views()
            return self.keys, self.values

        def _views(self) -> None:
            self.keys, self.values = self._k[..., :self.length, :], self._v[..., :self.length, :]

        def _grown(self, old, new, end: int):
            shape = (*new.shape[:-2], end + self.CHUNK, new.shape[-1])
            buffer = new.new_empty(shape)
            if old is not None:
                buffer[..., :self.length, :] = old[..., :self.length, :]
            return buffer

        def get_seq_length(self) -> int:
            return self.length if self.is_initialized else 0

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.get_seq_length() > 0:
                self._k, self._v = self._k.repeat_interleave(repeats, 0), self._v.repeat_interleave(repeats, 0)
                self._views()

        def batch_select_indices(self, indices) -> None:
            if self.get_seq_length() > 0:
                self._k, self._v = self._k[indices], self._v[indices]
                self._views()

        def crop(self, tokens_to_remove: int) -> None:
            raise NotImplementedError("the generator's KV cache is never cropped")

    return PreallocatedLayer


def _torch_setup(device: str, dtype: str):
    import torch

    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return torch, device, {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16,
                           "float16": torch.float16}[dtype]


class TransformersGenerator:
    """Batched sampling with the model's own KV cache, in a short decode loop of ours rather than
    `model.generate`: on a small model the per-token overhead of `generate` dominates (logits processors,
    cache bookkeeping), and a search sends n samples of the same prompt, so the prompt is encoded once and
    its cache copied to the n rows. Rows that stop leave the batch, so a long straggler does not carry
    the finished rows along."""

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64,
                 max_prompt_tokens: int = 2048):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch, device, torch_dtype = _torch_setup(device, dtype)
        self._setup(AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(device),
                    AutoTokenizer.from_pretrained(model), batch_size, max_prompt_tokens)

    @classmethod
    def from_model(cls, model, tokenizer, batch_size: int = 64, max_prompt_tokens: int = 2048):
        """A generator over a model already in memory (e.g. one being trained); it is put in eval mode."""
        generator = cls.__new__(cls)
        generator._setup(model, tokenizer, batch_size, max_prompt_tokens)
        return generator

    def _setup(self, model, tokenizer, batch_size: int, max_prompt_tokens: int) -> None:
        import torch

        self.torch, self.model, self.device = torch, model.eval(), model.device
        self.tokenizer = tokenizer
        self.tokenizer.padding_side, self.tokenizer.truncation_side = "left", "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size, self.max_prompt_tokens = batch_size, max_prompt_tokens
        self.preallocated_cache = True  # bench/generation.py compares it with transformers' DynamicLayer
        # transformers renamed `past_key_values` to `cache` (5.2x); pass the cache under the name this version reads
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

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
        greedy = sampling.temperature == 0
        per_prompt = 1 if greedy else sampling.n
        stop_ids, text_stops = self._stops(sampling.stop)
        end_ids = set(stop_ids) | {tok.eos_token_id, tok.pad_token_id} - {None}
        rng = torch.Generator(device=self.device).manual_seed(seed)
        tokens = self._decode(enc["input_ids"], enc["attention_mask"], per_prompt, sampling, rng, end_ids, text_stops)
        completions = [self._completion(t, stop_ids, sampling) for t in tokens]
        grouped = [completions[i * per_prompt:(i + 1) * per_prompt] for i in range(len(prompts))]
        return [group * sampling.n if greedy else group for group in grouped]

    def _decode(self, ids, mask, n: int, sampling: SamplingConfig, rng, end_ids: set[int],
                text_stops: list[str]) -> list[list[int]]:
        """New token ids of every row (prompt-major, n rows per prompt), each up to and including the
        token that ended it."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        torch = self.torch
        cache = DynamicCache(config=self.model.config)
        # only plain layers are swapped: sliding-window and other kinds keep transformers' own cache
        if self.preallocated_cache and all(type(layer) is DynamicLayer for layer in cache.layers):
            cache.layers = [_preallocated_layer()() for _ in cache.layers]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self._forward(ids, mask, positions, cache)
            if n > 1:  # one prompt encoding, n sampled continuations
                cache.batch_repeat_interleave(n)
                logits, mask = logits.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
                positions = positions.repeat_interleave(n, 0)
            rows = list(range(logits.shape[0]))  # live rows -> output index
            out: list[list[int]] = [[] for _ in rows]
            last = positions[:, -1:]
            stop_len = max((len(s) for s in text_stops), default=0)
            for _ in range(sampling.max_tokens):
                chosen = self._pick(logits, sampling, rng).tolist()
                keep = []
                for k, (row, t) in enumerate(zip(rows, chosen)):
                    out[row].append(t)
                    if t not in end_ids and not (text_stops and self._tail_stops(out[row], text_stops, stop_len)):
                        keep.append(k)
                if not keep or len(out[rows[0]]) >= sampling.max_tokens:
                    break
                step = torch.tensor([chosen[k] for k in keep], device=ids.device)[:, None]
                if len(keep) < len(rows):  # finished rows leave the batch and the cache
                    index = torch.tensor(keep, device=ids.device)
                    cache.batch_select_indices(index)
                    mask, last = mask[index], last[index]
                    rows = [rows[k] for k in keep]
                mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
                last = last + 1
                logits = self._forward(step, mask, last, cache)
        return out

    def _forward(self, ids, mask, positions, cache):
        kwargs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, self._cache_kw: cache,
                  "use_cache": True, "logits_to_keep": 1}
        return self.model(**kwargs).logits[:, -1].float()

    def _pick(self, logits, sampling: SamplingConfig, rng):
        torch = self.torch
        if sampling.temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:  # nucleus: the smallest set of tokens whose mass reaches top_p
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs >= sampling.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        return torch.multinomial(probs, 1, generator=rng)[:, 0]

    def _tail_stops(self, tokens: list[int], stops: list[str], stop_len: int) -> bool:
        """A text stop string has appeared at the end of the generated text (only its tail is decoded)."""
        tail = self.tokenizer.decode(tokens[-(stop_len + 2):])
        return any(s in tail for s in stops)

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


def _shared_starts(ids: list[list[int]], min_shared: int) -> list[tuple[list[int], int]]:
    """Groups of at least two texts (token lists) that begin with the same `min_shared` tokens or more:
    (members, shared length), the shared length leaving every member one token of its own. Texts are
    grouped by their first `min_shared` tokens, then the shared part is the members' longest common start."""
    by_start: dict[tuple, list[int]] = {}
    for i, row in enumerate(ids):
        if len(row) > min_shared:
            by_start.setdefault(tuple(row[:min_shared]), []).append(i)
    groups = []
    for members in by_start.values():
        if len(members) > 1:
            first, shared = ids[members[0]], min(len(ids[i]) for i in members) - 1
            for i in members[1:]:
                shared = next((k for k in range(min_shared, shared) if ids[i][k] != first[k]), shared)
            groups.append((members, shared))
    return groups


def _chunks(groups: list[tuple[list[int], int]], rows: int):
    """Consecutive groups holding about `rows` members per forward pass (a larger group goes alone)."""
    chunk, size = [], 0
    for group in sorted(groups, key=lambda g: g[1]):  # similar shared lengths pad less
        if chunk and size + len(group[0]) > rows:
            yield chunk
            chunk, size = [], 0
        chunk.append(group)
        size += len(group[0])
    if chunk:
        yield chunk


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
        self.share_prefixes, self.min_shared = True, 32  # off: every text whole (bench/evaluation.py compares)
        params = inspect.signature(getattr(self.model, self.model.base_model_prefix).forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    def raw(self, prefixes: Sequence[str]):
        """The value head's raw outputs, one per prefix, as a float tensor. Texts that share a long start (a
        node's children in a search: the question and the steps so far) run that start once (`_shared`)."""
        torch = self.torch
        if not prefixes:
            return torch.zeros(0)
        ids = self.tokenizer(list(prefixes), add_special_tokens=False)["input_ids"]
        ids = [row[-self.max_tokens:] for row in ids]  # cut at the start: the judged step is at the end
        groups = _shared_starts(ids, self.min_shared) if self.share_prefixes and self._parts() else []
        alone = sorted(set(range(len(ids))) - {i for members, _ in groups for i in members},
                       key=lambda i: len(ids[i]))  # similar lengths pad less
        raw = torch.empty(len(ids))
        with torch.inference_mode():
            for start in range(0, len(alone), self.batch_size):
                rows = alone[start:start + self.batch_size]
                raw[torch.tensor(rows, dtype=torch.long)] = self._whole([ids[i] for i in rows])
            for chunk in _chunks(groups, self.batch_size):
                rows = [i for members, _ in chunk for i in members]
                raw[torch.tensor(rows, dtype=torch.long)] = self._shared(ids, chunk)
        return raw

    def _parts(self):
        """(backbone, head) of a `...ForSequenceClassification` model, when it has the usual two (`score`)."""
        backbone = getattr(self.model, self.model.base_model_prefix, None)
        head = getattr(self.model, "score", None)
        return (backbone, head) if backbone is not None and isinstance(head, self.torch.nn.Linear) else None

    def _padded(self, rows: list[list[int]]):
        torch = self.torch
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, :len(r)], mask[k, :len(r)] = torch.tensor(r, dtype=torch.long), 1
        return ids.to(self.device), mask.to(self.device)

    def _whole(self, rows: list[list[int]]):
        ids, mask = self._padded(rows)
        return self.model(input_ids=ids, attention_mask=mask).logits[:, 0].float().cpu()

    def _shared(self, ids: list[list[int]], groups: list[tuple[list[int], int]]):
        """Raw outputs of the groups' members, in order: each group's shared start runs once (right-padded
        with the other groups'), its KV cache is copied to the members, then their own tokens run after it
        at their true positions; the head reads the last real token, as for a whole text."""
        from transformers import DynamicCache

        torch = self.torch
        backbone, head = self._parts()
        starts, start_mask = self._padded([ids[members[0]][:shared] for members, shared in groups])
        cache = DynamicCache(config=self.model.config)
        backbone(input_ids=starts, attention_mask=start_mask, use_cache=True, **{self._cache_kw: cache})
        owner = torch.tensor([g for g, (members, _) in enumerate(groups) for _ in members], device=self.device)
        cache.batch_select_indices(owner)
        rests, rest_mask = self._padded([ids[i][shared:] for members, shared in groups for i in members])
        lengths = torch.tensor([shared for members, shared in groups for _ in members], device=self.device)
        positions = lengths[:, None] + torch.arange(rests.shape[1], device=self.device)[None, :]
        hidden = backbone(input_ids=rests, attention_mask=torch.cat([start_mask[owner], rest_mask], dim=1),
                          position_ids=positions, use_cache=True, **{self._cache_kw: cache}).last_hidden_state
        last = rest_mask.sum(1) - 1
        return head(hidden[torch.arange(len(last)), last]).float()[:, 0].cpu()

    def score(self, prefixes: Sequence[str]) -> list[float]:
        return ppm_readout(self.raw(prefixes)).tolist()
