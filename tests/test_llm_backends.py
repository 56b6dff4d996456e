"""Generation and scoring backends on real (tiny) models: the transformers backend, the OpenAI-compatible
HTTP backend against a real server on loopback (tests/openai_server.py, a stand-in for `vllm serve`),
and the vLLM backend's import behaviour (vLLM itself needs a GPU and is not installed here)."""

import asyncio
import math
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from importlib.util import find_spec

import pytest

from openai_server import CompletionsServer
from rstar_pipeline.llm.base import SamplingConfig, ppm_readout
from rstar_pipeline.llm.hf import TransformersGenerator, TransformersScorer
from rstar_pipeline.llm.openai_api import OpenAIBackendError, OpenAIGenerator
from rstar_pipeline.steps import SEARCH_STOP, StepKind, load_template, parse_step

SFT = load_template("sft")
GREEDY = SamplingConfig(n=1, temperature=0.0, max_tokens=40)
GREEDY_STEP = replace(GREEDY, stop=SEARCH_STOP)


def question(i: int) -> str:
    return SFT.build(f"Mia has {i} apples. How many apples does Mia have now?")


# Prompts of different lengths, in no length order, whose greedy continuations differ, so that a
# result landing on the wrong prompt shows.
MIXED = [question(7), "apples = ", SFT.build("Tom has 5 pears. He buys 3 more pears at the market today. How many?"),
         question(123) + "<code>\n# Step 1: start\napples = 123\n<end_of_step>", "# Step", question(42)]


@pytest.fixture(scope="module")
def generator(tiny_policy):
    return TransformersGenerator(tiny_policy, device="cpu", dtype="float32")


# ---------------------------------------------------------------- transformers backend


def test_tiny_policy_writes_a_step(generator):
    """The shared policy fixture writes a code step closed by <end_of_step>, greedily."""
    for group in generator.generate([question(i) for i in (3, 58, 250, 999)], GREEDY_STEP):
        c = group[0]
        assert c.stop == "<end_of_step>" and c.text.startswith("<code>\n# Step 1")
        assert parse_step(c.text, c.stop).kind is StepKind.CODE


def test_batched_greedy_equals_one_prompt_at_a_time(generator):
    """Left padding in a batch changes nothing: greedy results match prompt-by-prompt generation."""
    batched = generator.generate(MIXED, GREEDY_STEP)
    single = [generator.generate([p], GREEDY_STEP)[0] for p in MIXED]
    assert batched == single
    assert len({g[0].text for g in batched}) >= 4  # the prompts are told apart, so order is tested


def test_n_completions_per_prompt_in_prompt_order(generator):
    """n completions for every prompt, in prompt order; at temperature 0 the n copies are identical."""
    sampled = generator.generate(MIXED, SamplingConfig(n=3, temperature=1.0, max_tokens=16, seed=1))
    assert [len(g) for g in sampled] == [3] * len(MIXED)
    greedy = generator.generate(MIXED, replace(GREEDY_STEP, n=3))
    assert [len(g) for g in greedy] == [3] * len(MIXED) and all(g[0] == g[1] == g[2] for g in greedy)
    assert [g[0] for g in greedy] == [generator.generate([p], GREEDY_STEP)[0][0] for p in MIXED]


@pytest.mark.parametrize("stop", ["<end_of_step>", "apples", ": start", "\n"])
def test_stop_string_cuts_and_is_reported(generator, stop):
    """A one-token tag stops exactly; text stop strings of one token ("apples", "\\n") or several
    (": start") cut too. The stop string is in Completion.stop and not in the text, which is the
    unstopped text cut before it."""
    full = generator.generate([question(7)], GREEDY)[0][0].text  # no stop: runs past the tag
    assert "<end_of_step>" in full and stop in full
    c = generator.generate([question(7)], replace(GREEDY, stop=(stop,)))[0][0]
    assert c.text == full[:full.index(stop)] and c.finish_reason == "stop"
    assert c.stop == stop


def test_first_stop_string_to_occur_wins(generator):
    full = generator.generate([question(7)], GREEDY)[0][0].text
    assert len(generator.tokenizer.encode(": start", add_special_tokens=False)) > 1  # stop_strings path
    c = generator.generate([question(7)], replace(GREEDY, stop=("<end_of_step>", "apples", ": start")))[0][0]
    assert (c.text, c.stop) == (full[:full.index(": start")], ": start")


def test_max_tokens_ends_with_length(generator):
    c = generator.generate([question(7)], replace(GREEDY_STEP, max_tokens=3))[0][0]
    full = generator.generate([question(7)], GREEDY_STEP)[0][0]
    assert (c.finish_reason, c.stop) == ("length", None)
    assert full.text.startswith(c.text) and len(generator.tokenizer.encode(c.text, add_special_tokens=False)) == 3


def test_seeds(generator):
    """Same seed, same samples; another seed, other samples (temperature 1)."""
    s = SamplingConfig(n=6, temperature=1.0, max_tokens=24, stop=SEARCH_STOP, seed=5)
    first = generator.generate(MIXED[:3], s)
    assert generator.generate(MIXED[:3], s) == first
    assert generator.generate(MIXED[:3], replace(s, seed=6)) != first
    assert len({c.text for c in first[0]}) > 1  # temperature 1 really samples



def test_preallocated_kv_cache_equals_transformers_dynamic_cache(generator):
    """The generator's in-place KV cache gives exactly the tokens of transformers' DynamicLayer: greedy
    and sampled, n rows per prompt (the cache is repeated), rows ending at different steps (it is cut
    down to the live rows) and more tokens than one buffer chunk (it grows)."""
    sampled = SamplingConfig(n=3, temperature=1.0, max_tokens=40, stop=SEARCH_STOP, seed=3)
    long = replace(GREEDY, max_tokens=300)
    try:
        generator.preallocated_cache = False
        expected = [generator.generate(MIXED, s) for s in (GREEDY_STEP, sampled, long)]
    finally:
        generator.preallocated_cache = True
    assert [generator.generate(MIXED, s) for s in (GREEDY_STEP, sampled, long)] == expected
    ends = {len(c.text) for group in expected[1] for c in group}
    assert len(ends) > 3 and {c.stop for group in expected[1] for c in group} >= {"<end_of_step>", None}
    assert max(len(generator.tokenizer.encode(g[0].text, add_special_tokens=False)) for g in expected[2]) > 256

@pytest.fixture(scope="module")
def ppm_path(tiny_student, tmp_path_factory):
    """A one-label sequence classifier made from the student, its head scaled so that raw outputs
    reach several units and the tanh read-out visibly bends."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path_factory.mktemp("tiny_ppm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_student, num_labels=1)
    with torch.no_grad():
        model.score.weight.mul_(10.0 / model.score.weight.norm())  # raw outputs of a few units either way
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_student).save_pretrained(path)
    return str(path)


def test_scorer_reads_out_the_raw_head(ppm_path):
    """One score per prefix, ppm_readout(raw), raw being the head's output at each prefix's last token
    (the same alone as in a padded batch)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    prefixes = MIXED + [question(9) + "<code>\n# Step 1: start\napples = 9\n<end_of_step>\n\n# Step 2"]
    scorer = TransformersScorer(ppm_path, device="cpu", dtype="float32", batch_size=3)
    raw = scorer.raw(prefixes)
    scores = scorer.score(prefixes)
    assert len(scores) == len(prefixes) == raw.shape[0]
    assert scores == ppm_readout(raw).tolist()  # the scorer's own read-out, in float32
    assert scores == pytest.approx([math.tanh(r / 5) for r in raw.tolist()], abs=1e-6)
    assert raw.abs().max() > 5 and all(-1 < s < 1 for s in scores)
    model = AutoModelForSequenceClassification.from_pretrained(ppm_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(ppm_path)
    with torch.no_grad():
        alone = [model(**tokenizer(p, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()
                 for p in prefixes]
    assert raw.tolist() == pytest.approx(alone, abs=1e-4)
    assert scorer.score([]) == []


def test_scorer_runs_shared_starts_once_with_the_same_outputs(ppm_path):
    """Children of one node (the question and steps so far, then a step each) are scored with their shared
    start run once and its KV cache copied: the same outputs as whole texts, to float precision, in prompt
    order, beside texts that share nothing and with texts cut at the start (max_tokens)."""
    from rstar_pipeline.llm.hf import _shared_starts

    steps = "<code>\n# Step 1: start\napples = {n}\n<end_of_step>"
    texts = [question(n) + steps.format(n=n) + f"\n\n# Step 2: buy {k}\napples = apples + {k}\n<end_of_step>"
             for n in (9, 250) for k in (1, 2, 30, 4)] + MIXED
    texts = texts[::2] + texts[1::2]  # siblings not next to each other
    for max_tokens in (2048, 40):
        scorer = TransformersScorer(ppm_path, device="cpu", dtype="float32", batch_size=5, max_tokens=max_tokens)
        scorer.min_shared = 8
        ids = [row[-max_tokens:] for row in scorer.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        groups = _shared_starts(ids, scorer.min_shared)
        assert sorted(len(members) for members, _ in groups)[-2:] == [4, 4]
        assert all(shared >= 8 and all(ids[i][:shared] == ids[members[0]][:shared] for i in members)
                   for members, shared in groups)
        shared = scorer.raw(texts)
        scorer.share_prefixes = False
        assert shared.tolist() == pytest.approx(scorer.raw(texts).tolist(), abs=1e-4)
        assert len(set(shared.tolist())) > len(texts) // 2  # the outputs differ: order is tested


# ---------------------------------------------------------------- OpenAI-compatible backend


@pytest.fixture(scope="module")
def servers(tiny_policy):
    with ExitStack() as stack:
        yield [stack.enter_context(CompletionsServer(tiny_policy)) for _ in range(2)]


def client(*servers_or_urls, **kwargs) -> OpenAIGenerator:
    urls = [s if isinstance(s, str) else s.url for s in servers_or_urls]
    return OpenAIGenerator(urls, "policy", **{"backoff_s": 0.01, **kwargs})


def test_openai_n_stop_and_request_body(servers):
    """n completions per prompt (copies when greedy), the stop string reported, and the request as
    vLLM expects it: a prompt list, sampling fields, seed, special tokens kept."""
    server = servers[0]
    sampled = client(server).generate(MIXED, SamplingConfig(n=3, temperature=1.0, max_tokens=16, seed=2))
    assert [len(g) for g in sampled] == [3] * len(MIXED)
    before = len(server.requests)
    greedy = client(server).generate([question(i) for i in (3, 58)], replace(GREEDY_STEP, n=4))
    assert all(len(g) == 4 and len(set(g)) == 1 for g in greedy)
    assert all(g[0].stop == "<end_of_step>" and "<end_of_step>" not in g[0].text for g in greedy)
    body = server.requests[before]
    assert body == {"model": "policy", "prompt": [question(3), question(58)], "n": 1, "temperature": 0.0,
                    "top_p": 1.0, "max_tokens": 40, "stop": list(SEARCH_STOP), "seed": 0,
                    "skip_special_tokens": False, "spaces_between_special_tokens": False}
    assert client(server).generate([], GREEDY) == []


def test_openai_seeds(servers):
    """Same seed, same samples; another seed, others. Request r carries seed + start * n, so that no two
    requests draw from the same seeds."""
    server = servers[0]
    s = SamplingConfig(n=3, temperature=1.0, max_tokens=24, stop=SEARCH_STOP, seed=10)
    gen = client(server, prompts_per_request=2)
    before = len(server.requests)
    first = gen.generate(MIXED[:5], s)
    assert sorted(r["seed"] for r in server.requests[before:]) == [10, 16, 22]
    assert gen.generate(MIXED[:5], s) == first
    assert gen.generate(MIXED[:5], replace(s, seed=11)) != first


def test_openai_greedy_matches_transformers_over_two_servers(servers, generator):
    """Spread over two servers, one prompt per request, greedy results are the transformers backend's;
    both servers get requests, round-robin."""
    before = [len(s.requests) for s in servers]
    via_http = client(*servers, prompts_per_request=1).generate(MIXED, replace(GREEDY_STEP, n=2))
    assert via_http == generator.generate(MIXED, replace(GREEDY_STEP, n=2))
    assert [len(s.requests) - b for s, b in zip(servers, before)] == [3, 3]


@pytest.mark.parametrize("stop_field, expected", [("stop_reason", "<end_of_step>"),  # vLLM
                                                  ("matched_stop", "<end_of_step>"),  # SGLang
                                                  (None, None)])  # neither: finish_reason only
def test_openai_stop_field_of_each_server_kind(tiny_policy, stop_field, expected):
    with CompletionsServer(tiny_policy, stop_field=stop_field) as server:
        c = client(server).generate([question(3)], GREEDY_STEP)[0][0]
    assert (c.finish_reason, c.stop) == ("stop", expected) and c.text.startswith("<code>")


@pytest.mark.parametrize("status", [503, 429])
def test_openai_retries_refused_requests(tiny_policy, status):
    """A server refusing its first requests (503, 429) still answers, after retries."""
    with CompletionsServer(tiny_policy, fail_first=2, fail_status=status) as server:
        result = client(server, retries=4).generate([question(3)], GREEDY_STEP)
        assert result[0][0].stop == "<end_of_step>" and len(server.requests) == 3


def test_openai_retries_timeouts(tiny_policy):
    with CompletionsServer(tiny_policy, stall_first=1, stall_s=1.5) as server:
        result = client(server, timeout_s=0.5, retries=2).generate([question(3)], GREEDY_STEP)
        assert result[0][0].stop == "<end_of_step>" and len(server.requests) == 2


def test_openai_retries_on_the_next_server(servers, generator):
    """A dead server in the pool costs a retry, not the run."""
    dead = f"http://127.0.0.1:{free_port()}"
    result = client(dead, servers[0], prompts_per_request=1).generate(MIXED[:4], GREEDY_STEP)
    assert result == generator.generate(MIXED[:4], GREEDY_STEP)


def test_openai_generate_from_inside_an_event_loop(servers):
    """generate is synchronous even for a caller that runs in an event loop (it uses a loop of its own)."""
    async def caller():
        return client(servers[0]).generate([question(3)], GREEDY_STEP)

    assert asyncio.run(caller())[0][0].stop == "<end_of_step>"


@pytest.mark.parametrize("model, prompt, status, message", [
    ("policy", "apples " * 1100, 400, "maximum context length is 1024 tokens"),
    ("no-such-model", "apples", 404, "The model `no-such-model` does not exist.")])
def test_openai_client_errors_are_clear_and_not_retried(servers, model, prompt, status, message):
    server = servers[0]
    before = len(server.requests)
    with pytest.raises(OpenAIBackendError) as error:
        OpenAIGenerator([server.url], model, backoff_s=0.01).generate([prompt], GREEDY)
    assert f"{server.url}/v1/completions" in str(error.value) and f"HTTP {status}" in str(error.value)
    assert message in str(error.value) and len(server.requests) == before + 1


def test_openai_unreachable_server_fails_after_retries():
    url = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(OpenAIBackendError) as error:
        client(url, retries=3, timeout_s=2).generate([question(3)], GREEDY)
    assert time.perf_counter() - start < 3
    assert f"{url}/v1/completions" in str(error.value) and "after 4 attempts" in str(error.value)
    assert "ConnectError" in str(error.value)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- vLLM backend


def test_vllm_backend_module_does_not_import_vllm():
    code = "import sys, rstar_pipeline.llm.vllm_backend; print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_backend_without_vllm_asks_for_the_gpu_extra():
    from rstar_pipeline.llm.vllm_backend import VLLMGenerator, VLLMScorer

    for backend in (VLLMGenerator, VLLMScorer):
        with pytest.raises(ImportError, match=r"pip install -e '\.\[gpu\]'"):
            backend("some/model")
