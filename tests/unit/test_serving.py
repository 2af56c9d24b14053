"""The serving endpoint on the scripted policy and verifier: bad requests refused in one line in
OpenAI's error shape, the response of an adaptive and a fixed-strategy request, and concurrent
requests batched into one search (counted on the scripted policy's engine calls) on a real
uvicorn server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.scripted import stepwise
from tests.unit.test_policy import policy_data
from ttscale.backends.scripted import ScriptedPolicy
from ttscale.planning import check_cell
from ttscale.policy import parse_policy
from ttscale.prompting import PromptBuilder
from ttscale.runner import CellRuntime
from ttscale.serving.answering import Answerer, ServeOptions, served_cell
from ttscale.serving.app import create_app
from ttscale.serving.batching import Batcher, BatcherClosed
from ttscale.settings import Settings
from ttscale.spec import SamplingParams
from ttscale.strategy_params import AdaptiveParams
from ttscale.verifiers.scripted import ScriptedVerifier

# The policy (tests/unit/test_policy.py): bins split at mean scores 0.7 and 0.4; best_of_n for
# bin 1, beam search (M = 2, 3 iterations) for bin 2, majority for bin 3, at n = 4 and 8. The
# verifier scores every step by the problem's first word, so a problem's bin is its word.
SCORE = {"easy": 0.9, "medium": 0.5, "hard": 0.1}
SAMPLING = SamplingParams(temperature=0.8, max_tokens=200, step_max_tokens=50)


def score(problem: str, steps) -> float:
    return SCORE.get(problem.split()[0], 0.9)


def make_answerer(tmp_path, respond=stepwise) -> Answerer:
    policy = parse_policy(policy_data())
    options = ServeOptions(n=4, probes=2, sampling=SAMPLING, max_n=16)
    cell = served_cell(policy, options, AdaptiveParams(policy=policy.model_dump(mode="json"), probes=2), 4, SAMPLING)
    model = ScriptedPolicy(respond)
    prepared = check_cell(cell, Settings.from_env({"TTSCALE_HOME": str(tmp_path)}))
    runtime = CellRuntime(prepared, model, ScriptedVerifier(score), PromptBuilder(chat=model.chat_prompt, format="chat"))
    return Answerer(policy, runtime, options)


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[TestClient, Answerer, Batcher]]:
    answerer = make_answerer(tmp_path)
    batcher = Batcher(answerer.answer, max_batch=8)
    batcher.start()
    with TestClient(create_app(answerer, batcher)) as client:
        yield client, answerer, batcher
    batcher.close(timeout_s=10)


def ask(text: str, **fields) -> dict:
    return {"model": "scripted", "messages": [{"role": "user", "content": text}], **fields}


BAD_REQUESTS = [
    (b"{bad", 400, "invalid_json", "the body is not valid JSON: Expecting property name enclosed in double quotes"),
    (b"[1, 2]", 400, "invalid_json", "the body must be a JSON object, got list"),
    ({"model": "scripted"}, 400, "invalid_value", "messages: Field required"),
    (ask("x") | {"messages": []}, 400, "invalid_value", "messages: List should have at least 1 item"),
    (ask("x") | {"messages": "What is 2 + 2?"}, 400, "invalid_value", "messages: Input should be a valid list, got 'What is 2 + 2?'"),
    (ask("x", temperature="hot"), 400, "invalid_value", "temperature: Input should be a valid number, got 'hot'"),
    (ask("x", max_tokens="64"), 400, "invalid_value", "max_tokens: Input should be a valid integer, got '64'"),
    (ask("x", max_tokens=4096), 400, "invalid_value", "max_tokens: at most 200 on this server (ttscale serve --max-tokens), got 4096"),
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 2?"}]}, 400, "invalid_value",
     "messages: one user message holding the problem (the model's own prompt frames it), got roles ['system', 'user']"),
    (ask("   "), 400, "invalid_value", "messages[0].content: the problem is empty"),
    (ask("x", stream=True), 400, "unsupported_parameter", "stream: streaming is not supported; send stream=false"),
    (ask("x", n=3), 400, "invalid_value", "n: one answer per request (the selected candidate); the search budget is ttscale.n, got 3"),
    (ask("x", seed=1), 400, "unsupported_parameter", "seed: per-request seeds are not supported"),
    (ask("x", frequency_penalty=0.5), 400, "unsupported_parameter", "'frequency_penalty': not a field ttscale serve takes; accepted: model, messages"),
    (ask("x", model="gpt-4o"), 404, "model_not_found", "model: this server serves 'scripted' (GET /v1/models), got 'gpt-4o'"),
    (ask("x", ttscale={"strategy": "beamsearch"}), 400, "unknown_strategy",
     "ttscale.strategy: unknown strategy 'beamsearch' (did you mean 'beam_search'?); allowed: adaptive, beam_search, best_of_n"),
    (ask("x", ttscale={"n": 3}), 400, "invalid_value", "ttscale.n: the policy has choices at n in [4, 8], got 3"),
    (ask("x", ttscale={"strategy": "best_of_n", "n": 32}), 400, "invalid_value", "ttscale.n: at most 16 on this server (ttscale serve --max-n), got 32"),
    (ask("x", ttscale={"strategy": "best_of_n", "n": 0}), 400, "invalid_value", "ttscale.n: Input should be greater than or equal to 1, got 0"),
    (ask("x", ttscale={"strategy": "beam_search", "n": 6}), 400, "invalid_value", "ttscale.n: must be a multiple of beam_search.beam_width=4, got 6"),
    (ask("x", ttscale={"strategy": "beam_search", "n": 4, "params": {"beam_width": 0}}), 400, "invalid_value",
     "ttscale.params.beam_width: Input should be greater than or equal to 1, got 0"),
    (ask("x", ttscale={"strategy": "dvts", "n": 4, "params": {"beam_width": "2"}}), 400, "invalid_value",
     "ttscale.params.beam_width: Input should be a valid integer, got '2'"),
    (ask("x", ttscale={"strategy": "best_of_n", "params": {"beam_width": 2}}), 400, "invalid_value", "ttscale.params.beam_width: Extra inputs are not permitted"),
    (ask("x", ttscale={"params": {"policy": "other.json"}}), 400, "invalid_value", "ttscale.params.policy: the server applies its own policy file"),
    (ask("x", ttscale={"params": {"probes": 0}}), 400, "invalid_value", "ttscale.params.probes: Input should be greater than or equal to 1, got 0"),
    (ask("x", ttscale={"selection": "best"}), 400, "invalid_value", "ttscale.selection: Input should be 'naive', 'weighted' or 'majority', got 'best'"),
    (ask("x", ttscale={"strategy": "best_of_n", "budget": 4}), 400, "invalid_value", "ttscale.budget: Extra inputs are not permitted"),
]


@pytest.mark.parametrize("body,status,code,message", BAD_REQUESTS, ids=[m[:40] for *_, m in BAD_REQUESTS])
def test_a_bad_request_is_refused_in_one_line_before_any_search(served, body, status, code, message):
    client, answerer, _ = served
    sent = client.post("/v1/chat/completions", content=body if isinstance(body, bytes) else json.dumps(body).encode())
    assert sent.status_code == status
    error = sent.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"].startswith(message), error["message"]
    assert "\n" not in error["message"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert answerer.runtime.policy.calls == []  # nothing was searched


def test_unknown_routes_methods_and_huge_bodies_get_openai_errors(served):
    client, _, _ = served
    assert client.get("/v1/nope").json()["error"] == {
        "message": "GET /v1/nope: Not Found", "type": "invalid_request_error", "param": None, "code": "not_found"}  # fmt: skip
    wrong = client.get("/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    huge = client.post("/v1/chat/completions", content=b" " * (2 << 20))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"


def test_models_lists_the_policy_model_and_what_is_applied(served):
    client, answerer, _ = served
    body = client.get("/v1/models").json()
    assert [m["id"] for m in body["data"]] == ["scripted"]
    info = body["data"][0]["ttscale"]
    assert (info["policy_id"], info["budgets"], info["n"], info["verifier"]) == (answerer.policy.policy_id, [4, 8], 4, "arithmetic")


@pytest.mark.parametrize(
    "word,bin_,chosen,selection,n_nodes",
    [
        # k = 2 probes + 2 more samples, all candidates
        ("easy", 1, {"name": "best_of_n"}, "weighted", 4),
        ("hard", 3, {"name": "majority"}, "majority", 4),
        # 2 probes + beam search's tree (N = 4, M = 2: 4 expansions in each of 3 iterations)
        ("medium", 2, {"name": "beam_search", "beam_width": 2, "n_iterations": 3, "lookahead": 0}, "weighted", 2 + 12),
    ],
)
def test_an_adaptive_answer_names_the_bin_its_choice_and_the_budget(served, word, bin_, chosen, selection, n_nodes):
    client, answerer, _ = served
    got = client.post("/v1/chat/completions", json=ask(f"{word} problem: what is 1 + 2?"))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["object"] == "chat.completion" and body["model"] == "scripted" and body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    info = body["ttscale"]
    assert (info["strategy"], info["difficulty_bin"], info["chosen"], info["selection"]) == ("adaptive", bin_, chosen, selection)
    assert (info["n"], info["verifier"], info["policy_id"], info["batch_size"]) == (4, "arithmetic", answerer.policy.policy_id, 1)
    assert info["answer"] in {"1", "2", "3"} and f"\\boxed{{{info['answer']}}}" in choice["message"]["content"]
    assert info["n_candidates"] == 4 and info["stored"] is None
    budget = info["budget"]
    assert budget["n_generations"] == n_nodes
    # Charged FLOPs are 2 · parameters · generated tokens (the scripted model and verifier have 1M each).
    assert budget["n_generated_tokens"] == body["usage"]["completion_tokens"] > 0
    assert budget["policy_flops"] == 2 * 1_000_000 * budget["n_generated_tokens"]
    assert budget["flops"] == budget["policy_flops"] + budget["verifier_flops"]
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_a_fixed_strategy_runs_as_asked_with_its_selection(served):
    client, answerer, _ = served
    got = client.post("/v1/chat/completions", json=ask(
        "hard problem", max_tokens=100, temperature=0.5, ttscale={"strategy": "best_of_n", "n": 3, "selection": "naive"}))  # fmt: skip
    assert got.status_code == 200, got.text
    info = got.json()["ttscale"]
    assert (info["strategy"], info["chosen"], info["difficulty_bin"], info["selection"]) == ("best_of_n", {"name": "best_of_n"}, None, "naive")
    assert info["n"] == 3 and info["n_candidates"] == 3 and info["budget"]["n_generations"] == 3
    assert answerer.runtime.policy.calls == [(1, 3)]  # no probes: 3 samples in one call
    majority = client.post("/v1/chat/completions", json=ask("hard problem", ttscale={"strategy": "majority", "n": 2})).json()["ttscale"]
    assert majority["selection"] == "majority" and majority["chosen"] == {"name": "majority"}


def test_a_failed_batch_is_answered_one_request_at_a_time():
    def run(items):
        if "bad" in items:
            raise ValueError("the engine refused a prompt")
        return [item.upper() for item in items]

    batcher = Batcher(run, max_batch=8)
    futures = [batcher.submit("cell", item) for item in ("a", "bad", "c")]  # queued before the worker starts
    other = batcher.submit("other cell", "d")
    batcher.start()
    assert [futures[0].result(10), futures[2].result(10), other.result(10)] == ["A", "C", "D"]
    with pytest.raises(ValueError, match="refused"):
        futures[1].result(10)
    assert batcher.batch_sizes == [3, 1, 1, 1, 1]  # the batch, its retries one by one, then the other key
    batcher.close(timeout_s=10)
    with pytest.raises(BatcherClosed):
        batcher.submit("cell", "e")


def test_requests_queued_when_the_server_stops_are_refused():
    batcher = Batcher(lambda items: items, max_batch=8)
    queued = batcher.submit("cell", "a")  # the worker never started
    batcher.close()
    with pytest.raises(BatcherClosed):
        queued.result(1)


def test_concurrent_requests_wait_for_the_running_search_and_share_the_next(tmp_path):
    """A real uvicorn server on a free port. The first request's search is held inside the
    engine call (its scripted respond waits on an event); four requests of the same cell and one
    of another arrive meanwhile and queue. Released, the four are answered by one search (one
    engine call with their 4 prompts), then the other: batches of 1, 4, 1."""
    import uvicorn

    from ttscale.serving.server import bind

    inside, release = threading.Event(), threading.Event()

    def respond(prompt: str, k: int) -> str:
        if "first" in prompt:
            inside.set()
            assert release.wait(60), "the test never released the first search"
        return stepwise(prompt, k)

    answerer = make_answerer(tmp_path, respond)
    batcher = Batcher(answerer.answer, max_batch=8)
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    server = uvicorn.Server(uvicorn.Config(create_app(answerer, batcher), log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    batcher.start()
    thread.start()
    best_of_2 = {"strategy": "best_of_n", "n": 2}
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not server.started:  # uvicorn listens once started; requests before are refused
                assert thread.is_alive()
                threading.Event().wait(0.05)
            with ThreadPoolExecutor(6) as pool:
                first = pool.submit(client.post, "/chat/completions", json=ask("first problem", ttscale=best_of_2))
                assert inside.wait(30)
                same = [pool.submit(client.post, "/chat/completions", json=ask(f"easy problem {i}", ttscale=best_of_2)) for i in range(4)]
                assert batcher.wait_pending(4, timeout_s=30)
                other = pool.submit(client.post, "/chat/completions", json=ask("easy other", ttscale={"strategy": "majority", "n": 2}))
                assert batcher.wait_pending(5, timeout_s=30)
                release.set()
                answers = [f.result(60) for f in [first, *same, other]]
    finally:
        release.set()
        server.should_exit = True
        thread.join(30)
        batcher.close(timeout_s=10)
    assert [a.status_code for a in answers] == [200] * 6
    assert [a.json()["ttscale"]["batch_size"] for a in answers] == [1, 4, 4, 4, 4, 1]
    assert batcher.batch_sizes == [1, 4, 1]
    assert answerer.runtime.policy.calls == [(1, 2), (4, 2), (1, 2)]  # one engine call per search
    assert len({a.json()["id"] for a in answers}) == 6
