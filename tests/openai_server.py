"""A test fixture helper: a small OpenAI-compatible completions server, the stand-in for `vllm serve`
(which needs a GPU and cannot run here), so that `OpenAIGenerator` is tested over real HTTP.

`CompletionsServer` serves `POST /v1/completions` on 127.0.0.1 (an ephemeral port) from a thread,
generating with `TransformersGenerator`. It answers like vLLM: `choices` prompt-major
(`index = prompt_i * n + j`) with `text`, `finish_reason` and `stop_reason` (or SGLang's
`matched_stop`, or neither, to test the client's fallbacks); 404 for another model name; 400 for an
invalid request or a prompt longer than `max_model_len` allows, with vLLM's kind of message; errors
as OpenAI-style `{"error": {...}}` bodies. Injectable faults: the first `fail_first` requests get
`fail_status` (503 by default), the first `stall_first` requests are answered only after `stall_s`.

It records every request body (`requests`). It does not stream, batch across requests (one
generation at a time, like one engine step at a time) or honour `skip_special_tokens` (the
transformers backend always keeps special tokens, which is what the client asks for).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.llm.hf import TransformersGenerator

# torch's random generator is process-wide: with two servers in one process, generations must not
# interleave, or a seed would no longer determine a request's samples.
_GENERATION_LOCK = threading.Lock()


class CompletionsServer:
    def __init__(self, model_path: str, served_name: str = "policy", max_model_len: int = 1024,
                 stop_field: str | None = "stop_reason", fail_first: int = 0, fail_status: int = 503,
                 stall_first: int = 0, stall_s: float = 0.0):
        self.generator = TransformersGenerator(model_path, device="cpu", dtype="float32")
        self.served_name, self.max_model_len, self.stop_field = served_name, max_model_len, stop_field
        self.fail_first, self.fail_status = fail_first, fail_status
        self.stall_first, self.stall_s = stall_first, stall_s
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> "CompletionsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def handle(self, path: str, raw: bytes) -> tuple[int, dict]:
        """(status, JSON body) for one request; the fault injection comes first, as a proxy's would."""
        with self._lock:
            number = len(self.requests) + 1
            body = _loads(raw)
            self.requests.append(body if isinstance(body, dict) else {"_raw": raw.decode(errors="replace")})
        if number <= self.fail_first:
            return self.fail_status, _error(self.fail_status, "Service Unavailable (injected failure)")
        if number <= self.stall_first:
            time.sleep(self.stall_s)
        if path != "/v1/completions":
            return 404, _error(404, f"no route {path}")
        if not isinstance(body, dict):
            return 400, _error(400, "request body is not a JSON object")
        if body.get("model") != self.served_name:
            return 404, _error(404, f"The model `{body.get('model')}` does not exist.")
        try:
            prompts, sampling = self._parse(body)
        except (KeyError, TypeError, ValueError) as e:
            return 400, _error(400, str(e))
        # One request at a time through the model, the length check included: a fast tokenizer's padding
        # and truncation settings are per-call state, so concurrent calls on one tokenizer interfere.
        with _GENERATION_LOCK:
            too_long = self._check_lengths(prompts, sampling)
            if too_long:
                return 400, _error(400, too_long)
            results = self.generator.generate(prompts, sampling)
        return 200, self._response(results)

    def _parse(self, body: dict) -> tuple[list[str], SamplingConfig]:
        prompts = body["prompt"]
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompt must be a string or a non-empty list of strings")
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        sampling = SamplingConfig(n=body.get("n", 1), temperature=body.get("temperature", 1.0),
                                  top_p=body.get("top_p", 1.0), max_tokens=body.get("max_tokens", 16), stop=stop,
                                  seed=body.get("seed") or 0)
        return prompts, sampling

    def _check_lengths(self, prompts: list[str], sampling: SamplingConfig) -> str | None:
        for p in prompts:
            tokens = len(self.generator.tokenizer.encode(p, add_special_tokens=False))
            if tokens + sampling.max_tokens > self.max_model_len:
                return (f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                        f"requested {tokens + sampling.max_tokens} tokens ({tokens} in the messages, "
                        f"{sampling.max_tokens} in the completion). Please reduce the length of the messages "
                        f"or completion.")
        return None

    def _response(self, results) -> dict:
        choices = []
        for group in results:
            for c in group:
                choice = {"index": len(choices), "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
                if self.stop_field:
                    choice[self.stop_field] = c.stop
                choices.append(choice)
        return {"id": f"cmpl-{time.monotonic_ns()}", "object": "text_completion", "created": int(time.time()),
                "model": self.served_name, "choices": choices}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body = self.server.app.handle(self.path, raw)
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timed out) on a stalled request; nothing to answer

    def log_message(self, *args):
        pass  # quiet tests


def _loads(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error(status: int, message: str) -> dict:
    kind = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}.get(status, "ServiceUnavailableError")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}
