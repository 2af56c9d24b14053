"""The wire format of `ttscale serve`: OpenAI's chat completions, with a `ttscale` extension.

A request is OpenAI's `POST /v1/chat/completions` body holding one problem — one `user`
message, which the model's own prompt frames as the strategies do for dataset problems — and
optionally, in an extra `ttscale` object, the strategy, budget and selection to answer with:

    {"model": "smollm2-135m", "messages": [{"role": "user", "content": "What is 12 + 35?"}],
     "max_tokens": 256, "ttscale": {"strategy": "beam_search", "n": 4, "params": {"beam_width": 2}}}

Without `ttscale.strategy` the server's policy file is applied (`adaptive`). The response is
OpenAI's `chat.completion` whose one choice is the selected candidate, plus a `ttscale` object:
the strategy requested and the one that ran, the predicted difficulty bin (adaptive), the
selection method, the extracted answer and the budget spent (`Budget`).

Every field is checked strictly (a string is not a number, unknown fields are refused); a bad
request is a `RequestError`: an HTTP status and one line naming the field, sent in OpenAI's
error shape (`error_body`). Pure: no HTTP framework here (`serving.app` has the routes).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttscale.errors import TtscaleError
from ttscale.field_errors import format_validation_error, one_line
from ttscale.policy import Selection

MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted (413 beyond): a problem is a few kilobytes."""
MAX_PROBLEM_CHARS = 32_000
"""Longest problem text accepted: beyond it no prompt fits a small model's context anyway."""
UNSUPPORTED = {
    "seed": "per-request seeds are not supported (they crash vLLM on CPU); the engine is seeded once: `ttscale serve --seed`",
    "stream_options": "streaming is not supported",
    "stop": "stop strings are not supported: the strategies stop where their search does",
    "logprobs": "log-probabilities are not returned",
    "top_logprobs": "log-probabilities are not returned",
    "tools": "tools are not supported",
    "tool_choice": "tools are not supported",
    "response_format": "response formats are not supported: the answer is the selected solution's text",
}
"""OpenAI request fields ttscale serve refuses, with why (any other unknown field is refused too)."""


class RequestError(TtscaleError):
    """A request the server will not answer: HTTP `status`, one-line message naming the field
    (`param`), and OpenAI's error `type` and `code`."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(one_line(message))
        self.status = status
        self.code = code
        self.param = param

    @property
    def type(self) -> str:
        return "invalid_request_error" if self.status < 500 else "server_error"


def error_body(message: str, *, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:  # noqa: A002
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": one_line(message), "type": type, "param": param, "code": code}}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


# ---- requests -------------------------------------------------------------------------------------


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class Message(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class TtscaleOptions(_Wire):
    """The `ttscale` extension of a request: how to answer it."""

    strategy: str | None = None
    """A strategy (`ttscale ls strategies`); default `adaptive`: the server's policy file."""
    n: int | None = Field(None, ge=1)
    """The budget N, as a cell's `n`; default the server's `--n`. Adaptive: one of the policy's budgets."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The strategy's parameters, as in a sweep spec (`beam_width`, `probes`, ...), `name` left out."""
    selection: Selection | None = None
    """How the answer is picked among the candidates; default the policy's choice for the predicted
    bin (adaptive), else `majority` for majority and `weighted` for the others."""


class ChatRequest(_Wire):
    """The fields of OpenAI's chat-completions request that ttscale serve takes."""

    model: str | None = None
    """The served model (`GET /v1/models`); optional."""
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    """Token limit of one whole solution (the cell's `max_tokens`), at most the server's."""
    max_completion_tokens: int | None = Field(None, ge=1)
    """OpenAI's newer name for `max_tokens`."""
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = None
    """OpenAI's number of choices: only 1 (the search budget is `ttscale.n`)."""
    stream: bool | None = None
    user: str | None = None
    """Accepted and ignored."""
    ttscale: TtscaleOptions | None = None


def parse_body(body: bytes) -> tuple[ChatRequest, str]:
    """The validated request in `body` and its problem text; RequestError naming the first problem."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(f"request body of {len(body)} bytes; at most {MAX_BODY_BYTES}", status=413, code="request_too_large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(f"the body is not valid JSON: {err}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    for key in data:
        if key in UNSUPPORTED:
            raise RequestError(f"{key}: {UNSUPPORTED[key]}", code="unsupported_parameter", param=key)
        if key not in ChatRequest.model_fields:
            accepted = ", ".join(ChatRequest.model_fields)
            raise RequestError(f"{key!r}: not a field ttscale serve takes; accepted: {accepted}", code="unsupported_parameter", param=str(key))
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as err:
        lines = format_validation_error(err).splitlines()
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise RequestError(lines[0] + more, param=_param(err)) from None
    if request.stream:
        raise RequestError("stream: streaming is not supported; send stream=false", code="unsupported_parameter", param="stream")
    if request.n not in (None, 1):
        raise RequestError(f"n: one answer per request (the selected candidate); the search budget is ttscale.n, got {request.n}", param="n")
    if None not in (request.max_tokens, request.max_completion_tokens) and request.max_tokens != request.max_completion_tokens:
        raise RequestError("max_completion_tokens: differs from max_tokens; send one", param="max_completion_tokens")
    return request, problem_text(request.messages)


def _param(err: ValidationError) -> str | None:
    first = err.errors()[0]["loc"]
    return ".".join(str(p) for p in first) or None


def problem_text(messages: list[Message]) -> str:
    """The problem: the one `user` message's text (text parts joined)."""
    if len(messages) != 1 or messages[0].role != "user":
        roles = [m.role for m in messages]
        raise RequestError(
            f"messages: one user message holding the problem (the model's own prompt frames it), got roles {roles}", param="messages"
        )
    content = messages[0].content
    text = content if isinstance(content, str) else "\n".join(p.text for p in content or [])
    if not text.strip():
        raise RequestError("messages[0].content: the problem is empty", param="messages[0].content")
    if len(text) > MAX_PROBLEM_CHARS:
        raise RequestError(f"messages[0].content: {len(text)} characters; at most {MAX_PROBLEM_CHARS}", param="messages[0].content")
    return text


# ---- responses ------------------------------------------------------------------------------------


class Budget(BaseModel):
    """What answering one request cost, counted as for a stored problem (`store` problem_runs)."""

    n_generations: int
    """Sequences the policy sampled: the nodes of the search tree (whole solutions, steps,
    revisions; adaptive's probes included). Lookahead roll-outs count in tokens only."""
    n_policy_calls: int
    """Generation requests made for this problem."""
    n_prompt_tokens: int
    """Prompt tokens of those requests, once per request."""
    n_prompt_tokens_computed: int
    """Of those, the ones the engine computed (not served from its prefix cache)."""
    n_generated_tokens: int
    n_verifier_tokens: int
    policy_flops: int
    """Charged as the reference does: 2 · policy parameters · generated tokens (`compute.charged_flops`)."""
    policy_flops_computed: int
    """2 · policy parameters · (prompt tokens computed + generated tokens) (`compute.computed_flops`)."""
    verifier_flops: int
    """2 · verifier parameters · verifier tokens."""
    flops: int
    """`policy_flops + verifier_flops`: the charged total the frontier's FLOPs axis uses."""


class StoredAs(BaseModel):
    """Where the request is in the store (`ttscale serve --store`)."""

    cell_id: str
    problem_id: str


class TtscaleAnswer(BaseModel):
    """The `ttscale` object of a response."""

    strategy: str
    """The strategy requested: `adaptive` (the policy file) or a fixed one."""
    chosen: dict[str, Any]
    """The strategy that ran and its parameters (`name` included): the policy's choice for the
    predicted bin (adaptive), else the requested one."""
    difficulty_bin: int | None
    """The difficulty bin the probes predicted (adaptive; 1 the easiest), else null."""
    n: int
    """The budget N."""
    verifier: str | None
    """The verifier that scored the candidates (and adaptive's probes): the policy file's."""
    aggregation: str
    """How step scores became a candidate's score (adaptive: as the chosen option aggregated)."""
    selection: Selection
    answer: str | None
    """The selected candidate's extracted final answer (null: none found)."""
    score: float | None
    """The selected candidate's aggregated verifier score."""
    n_candidates: int
    budget: Budget
    policy_id: str
    """12 hex of the policy file's content (`Policy.policy_id`)."""
    batch_size: int
    """Requests answered by the same batched search as this one."""
    stored: StoredAs | None = None
    store_error: str | None = None
    """Why the request could not be stored (`--store`), the answer being returned anyway."""


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    ttscale: TtscaleAnswer
