"""Generation through OpenAI-compatible *completions* servers (`vllm serve`, SGLang, ...), over HTTP.

`OpenAIGenerator` implements the `Generator` protocol: it cuts the prompts into requests of
`prompts_per_request` prompts (`POST {base_url}/v1/completions`, `prompt` a list, `n` samples each),
sends them concurrently (at most `max_concurrency` in flight) and round-robin over several servers,
retries connection errors, timeouts, 429 and 5xx with exponential backoff (each retry goes to the
next server, so one dead server in a pool does not fail the run), and fails with the URL, status
and the server's message on any other 4xx or when the retries run out. `generate` is synchronous;
the concurrency lives in an asyncio loop of its own.

The stop string that ended a completion is what the search reads to know the step kind; it comes
from vLLM's `stop_reason` or SGLang's `matched_stop`. A server that reports neither gives only
`finish_reason`: such completions come back with `stop=None`, so serve the policy with vLLM or SGLang.

Seeds and determinism. Request r, whose first prompt is prompt `start`, carries
`seed = sampling.seed + start * n`. vLLM seeds sample j of a request with `seed + j`, so no two
requests of a call share a seed (prompts within one request do share theirs: a prompt repeated
inside one request draws the same samples). Requests go to servers by request number, not by
timing, so a repeated call sends the same requests to the same servers. What a remote server gives
back for them is reproducible only as far as its logits are: vLLM batches our requests with
whatever else it is running, and batch composition, chunked prefill and prefix-cache hits change
floating-point reductions, hence now and then a sampled (even a greedy) token. Same seed, same
samples is therefore the usual case, not a guarantee; vLLM's batch-invariant mode
(`VLLM_BATCH_INVARIANT=1`) makes it one at a cost in throughput. Other servers may ignore `seed`.
No server reproduces the transformers backend's samples (different random streams); greedy
decoding of the same weights agrees up to numerics.

Not covered: chat completions, streaming, logprobs, token-id prompts, starting or stopping servers.
"""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import httpx

from rstar_pipeline.llm.base import Completion, SamplingConfig


class OpenAIBackendError(RuntimeError):
    """A completions request failed for good: a 4xx, retries exhausted, or an unusable response."""


class OpenAIGenerator:
    def __init__(self, base_urls: list[str], model: str, max_concurrency: int = 16, prompts_per_request: int = 8,
                 timeout_s: float = 120, retries: int = 4, backoff_s: float = 0.5, api_key: str | None = None):
        if isinstance(base_urls, str) or not base_urls:
            raise ValueError("OpenAIGenerator needs a non-empty list of base URLs, e.g. ['http://host:8000']")
        if max_concurrency < 1 or prompts_per_request < 1 or retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError("OpenAIGenerator: max_concurrency and prompts_per_request must be >= 1, "
                             "retries and backoff_s >= 0, timeout_s > 0")
        # Accept "http://host:8000", ".../" and ".../v1" alike: the path is always /v1/completions.
        self.urls = [u.rstrip("/").removesuffix("/v1") + "/v1/completions" for u in base_urls]
        self.model, self.max_concurrency, self.prompts_per_request = model, max_concurrency, prompts_per_request
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if not prompts:
            return []
        return _run(self._generate(list(prompts), sampling))

    async def _generate(self, prompts: list[str], sampling: SamplingConfig) -> list[list[Completion]]:
        # Greedy samples are identical: ask for one and copy it, as the transformers backend does.
        greedy = sampling.temperature == 0
        per_prompt = 1 if greedy else sampling.n
        semaphore = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers, limits=limits) as client:
            requests = []
            for k, start in enumerate(range(0, len(prompts), self.prompts_per_request)):
                chunk = prompts[start:start + self.prompts_per_request]
                body = self._body(chunk, sampling, per_prompt, seed=sampling.seed + start * sampling.n)
                requests.append(self._request(client, semaphore, k, body))
            chunks = await asyncio.gather(*requests)
        groups = [group for chunk in chunks for group in chunk]
        return [group * sampling.n if greedy else group for group in groups]

    def _body(self, prompts: list[str], sampling: SamplingConfig, n: int, seed: int) -> dict:
        return {"model": self.model, "prompt": prompts, "n": n, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "max_tokens": sampling.max_tokens, "stop": list(sampling.stop),
                "seed": seed,
                # vLLM/SGLang extensions: keep the step tags (special tokens) in the text so that they can
                # match as stop strings, and decode them without the spaces vLLM puts around them by default.
                "skip_special_tokens": False, "spaces_between_special_tokens": False}

    async def _request(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, k: int,
                       body: dict) -> list[list[Completion]]:
        async with semaphore:
            url, data = await self._post(client, k, body)
        return _parse(data, len(body["prompt"]), body["n"], url)

    async def _post(self, client: httpx.AsyncClient, k: int, body: dict) -> tuple[str, dict]:
        """POST with retries; request k starts on server k (round-robin), each retry moves to the next."""
        tried, last = [], ""
        for attempt in range(self.retries + 1):
            url = self.urls[(k + attempt) % len(self.urls)]
            tried.append(url)
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as e:  # refused, reset, timed out
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if response.status_code == 200:
                    return url, _json(response, url)
                message = _server_message(response)
                if not _retryable(response.status_code):
                    raise OpenAIBackendError(f"POST {url} failed with HTTP {response.status_code}: {message}")
                last = f"HTTP {response.status_code}: {message}"
            if attempt < self.retries:
                # Exponential backoff, jittered so that many requests refused together do not return together.
                await asyncio.sleep(self.backoff_s * 2 ** attempt * random.uniform(0.5, 1.0))
        where = ", ".join(dict.fromkeys(tried))
        raise OpenAIBackendError(f"POST {where} failed after {len(tried)} attempts; last error: {last}")


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _server_message(response: httpx.Response) -> str:
    """The error message in vLLM's, OpenAI's or SGLang's error body; the raw text otherwise."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error)[:500]


def _json(response: httpx.Response, url: str) -> dict:
    try:
        return response.json()
    except ValueError as e:
        raise OpenAIBackendError(f"POST {url} returned a body that is not JSON: {response.text[:200]!r}") from e


def _parse(data: dict, n_prompts: int, n: int, url: str) -> list[list[Completion]]:
    """Choices come prompt-major (index = prompt_i * n + j); back to one list of n per prompt."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != n_prompts * n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise OpenAIBackendError(f"POST {url} returned {got} choices for {n_prompts} prompts x n={n}")
    ordered = sorted(choices, key=lambda c: c.get("index", 0))
    if [c.get("index", i) for i, c in enumerate(ordered)] != list(range(len(ordered))):
        raise OpenAIBackendError(f"POST {url} returned choice indices that are not 0..{len(ordered) - 1}")
    completions = [_completion(c, url) for c in ordered]
    return [completions[i * n:(i + 1) * n] for i in range(n_prompts)]


def _completion(choice: dict, url: str) -> Completion:
    finish = choice.get("finish_reason")
    if finish not in ("stop", "length"):
        raise OpenAIBackendError(f"POST {url} returned finish_reason {finish!r} (expected 'stop' or 'length')")
    # vLLM: stop_reason; SGLang: matched_stop. A token id there (EOS) is not a stop string.
    matched = choice.get("stop_reason")
    matched = matched if matched is not None else choice.get("matched_stop")
    stop = matched if finish == "stop" and isinstance(matched, str) else None
    return Completion(choice.get("text", ""), finish, stop)


def _run(coroutine):
    """Run a coroutine to completion from synchronous code, also when the caller is inside an event loop
    (a notebook, an async op), where asyncio.run refuses: then it runs on a fresh loop in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
