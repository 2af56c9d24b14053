"""Starting and calling a vLLM engine: the offline `LLM`, or `AsyncLLM` serving concurrent callers.

`vllm_engine.VllmPolicy` talks to either through the same three calls: `run(token_ids, params)`
(vLLM `RequestOutput`s in prompt order, each with all n samples), `reset_prefix_cache()` and
`shutdown()`. vLLM itself is imported only when an engine starts.

- `OfflineEngine` (the default): vLLM's `LLM`. One call at a time — a lock serialises callers —
  and every request of a call is queued before the engine steps: callers that batch across
  problems get one batch per call, and wait for its slowest sequence (the iteration barrier).
- `AsyncEngine`: vLLM's `AsyncLLM`, its event loop on a daemon thread of this process (the engine
  core still runs in its own process). `run` is thread-safe and callers do not wait for each
  other: each request joins the engine's running batch when it arrives and a call returns when
  its own requests are done. What per-problem scheduling (`runner.search_shard`) runs on.

Engine settings that vLLM reads from the environment (`VLLM_CPU_KVCACHE_SPACE`, `VLLM_CACHE_ROOT`,
...) are set just before an engine is built, from `Settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.errors import BackendError
from ttscale.settings import Settings

CPU_KV_BLOCK_SIZE = 32
"""KV-cache block (tokens) of an engine on CPU unless one is asked for. vLLM-CPU's own default is
128; its attention kernels take multiples of 32. vLLM serves its prefix cache in whole blocks, so
each sample recomputes the prompt past its last whole block — with search re-sending every growing
path each step, 64 tokens per sample on average at 128. Measured on beam search across 32, 64 and
128 (`benchmarks/search_throughput.py --block-sizes 32,64,128`, docs/performance.md): 32 computed
the fewest prompt tokens and ran fastest. On GPU, vLLM's own default (16) is left alone."""


def resolve_kv_block_size(requested: int | None) -> int | None:
    """The KV-cache block size to ask vLLM for: `requested` if given, `CPU_KV_BLOCK_SIZE` on CPU,
    else None (vLLM's default for the platform)."""
    if requested is not None:
        return requested
    from vllm.platforms import current_platform

    return CPU_KV_BLOCK_SIZE if current_platform.is_cpu() else None


def engine_dtype(requested: str) -> str:
    """The compute dtype: `requested` unless "auto"; on CPU, "auto" means bfloat16 only where the
    CPU computes it natively (AVX512-BF16 or AMX) and float32 elsewhere (bf16 decoded 3-4x slower
    than fp32 on an AVX2-only EPYC); on GPU the checkpoint's own dtype."""
    if requested != "auto":
        return requested
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return "auto"
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


def configure_environment(settings: Settings) -> None:
    """vLLM reads these at engine construction (also in its spawned engine process)."""
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = f"{settings.kv_cache_gib:g}"
    os.environ.setdefault("VLLM_CACHE_ROOT", str(settings.home / "vllm-cache"))
    os.environ.setdefault("VLLM_CONFIG_ROOT", str(settings.home / "vllm-config"))
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")


def _start_failed(what: str, model: str, path: str, err: Exception) -> BackendError:
    return BackendError(" ".join(f"vllm: cannot start {what} for {model!r} at {path}: {err}".split()))


def start_llm(
    path: str, model: str, settings: Settings, dtype: str, what: str, *, in_process: bool = False, **engine_args: Any
) -> tuple[Any, str, float]:
    """A vLLM `LLM` on the model at `path`: (engine, the dtype it computes in, start-up seconds).
    Every failure to start is one BackendError naming the model (vLLM raises many types).

    `in_process`: run vLLM's engine core in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`,
    read at construction only). The default engine core is a child process that starts stepping
    as soon as the first requests of a call reach it, so how a call's requests are batched
    depends on timing; on a loaded CPU in bf16 that can flip a greedy token. In process, every
    request of a call is queued before the first step: greedy decoding repeats exactly, at
    1.7-2.4x the wall time under load (measured, docs/performance.md)."""
    configure_environment(settings)
    start = time.monotonic()
    previous = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    if in_process:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        from vllm import LLM

        resolved = engine_dtype(dtype)
        llm = LLM(model=path, dtype=resolved, **engine_args)
    except Exception as err:  # noqa: BLE001 - vLLM raises many types at start-up; all mean "no engine"
        raise _start_failed(what, model, path, err) from err
    finally:
        if in_process:
            if previous is None:
                os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
            else:
                os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = previous
    return llm, resolved, time.monotonic() - start


def stop_llm(llm: Any) -> None:
    """Stop an `LLM`'s engine-core process."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


class OfflineEngine:
    """vLLM's offline `LLM`: one call at a time, all of a call's requests batched together."""

    concurrent = False
    """Callers are served one at a time (per-problem scheduling would search one problem at a time)."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._lock = threading.Lock()
        self.config = llm.llm_engine.vllm_config
        self.tokenizer = llm.get_tokenizer()

    def run(self, prompts: Sequence[dict], params: Any) -> list[Any]:
        """`prompts` (vLLM prompt dicts, e.g. `{"prompt_token_ids": [...]}`) under `params`, in one call."""
        with self._lock:
            return self._llm.generate(list(prompts), params, use_tqdm=False)

    def encode(self, prompts: Sequence[dict], params: Any, **kwargs: Any) -> list[Any]:
        with self._lock:
            return self._llm.encode(list(prompts), params, use_tqdm=False, **kwargs)

    def reset_prefix_cache(self) -> bool:
        with self._lock:
            return bool(self._llm.reset_prefix_cache())

    def shutdown(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            stop_llm(llm)


class AsyncEngine:
    """vLLM's `AsyncLLM` behind a thread-safe, blocking `run`: callers on many threads share the
    engine's running batch without waiting for each other."""

    concurrent = True
    """Concurrent callers are batched by the engine as their requests arrive."""

    def __init__(self, path: str, dtype: str, engine_args: dict[str, Any]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-async-engine", daemon=True)
        self._thread.start()
        self._ids = itertools.count()
        self._engine: Any = None
        try:
            self._engine = self._call(self._build(path, dtype, engine_args))
        except BaseException:
            self._stop_loop()
            raise
        self.config = self._engine.vllm_config
        self.tokenizer = self._engine.get_tokenizer()

    @staticmethod
    async def _build(path: str, dtype: str, engine_args: dict[str, Any]) -> Any:
        # Built on the loop's thread, so that its output handler runs on that loop.
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        # LLM_CLASS: the offline engine's scheduler limits (on CPU 256 sequences, 4096 batched
        # tokens; a server's context would halve both), so the two engines differ only in API.
        return AsyncLLM.from_engine_args(AsyncEngineArgs(model=path, dtype=dtype, **engine_args),
                                         usage_context=UsageContext.LLM_CLASS)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _one(self, prompt: dict, params: Any) -> Any:
        final = None
        async for out in self._engine.generate(prompt, params, request_id=f"ttscale-{next(self._ids)}"):
            final = out
        return final

    async def _all(self, prompts: Sequence[dict], params: Any) -> list[Any]:
        return list(await asyncio.gather(*(self._one(p, params) for p in prompts)))

    def run(self, prompts: Sequence[dict], params: Any) -> list[Any]:
        """Like `OfflineEngine.run`; safe from any thread, returns when these requests are done."""
        from vllm.sampling_params import RequestOutputKind

        params = params.clone()
        params.output_kind = RequestOutputKind.FINAL_ONLY  # one output per request, not one per token
        return self._call(self._all(prompts, params))

    def reset_prefix_cache(self) -> bool:
        return bool(self._call(self._engine.reset_prefix_cache()))

    @staticmethod
    async def _cancel_tasks() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_loop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._cancel_tasks())  # the engine's output handler, so that none is left pending
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()
            self._stop_loop()


def start_async(path: str, model: str, settings: Settings, dtype: str, what: str, **engine_args: Any) -> tuple[AsyncEngine, str, float]:
    """An `AsyncEngine` on the model at `path`, like `start_llm` (which see)."""
    configure_environment(settings)
    start = time.monotonic()
    try:
        resolved = engine_dtype(dtype)
        engine = AsyncEngine(path, resolved, engine_args)
    except Exception as err:  # noqa: BLE001 - vLLM raises many types at start-up; all mean "no engine"
        raise _start_failed(what, model, path, err) from err
    return engine, resolved, time.monotonic() - start
