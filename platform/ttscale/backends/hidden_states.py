"""Hidden states of a causal LM at the end of each reasoning step (transformers, CPU or GPU).

The learned verifier (`verifiers/learned.py`) and its training (`learning/features.py`) read
the same features through this module: a solution becomes token ids — the problem in a fixed
frame (`STEP_FORMAT`), then every step followed by a blank line, each step tokenised on its own
— and the residual stream after decoder layer ℓ is read at each step's last token (its
trailing blank line). Tokenising steps apart means the ids up to step i never depend on a later
step, and attention is causal, so the feature of step i depends only on the problem and
steps[:i+1]: the verifier is causal as `Verifier` requires, and one forward pass over a whole
solution yields the features of all its prefixes (what training relies on to encode each
distinct solution once).

Only the decoder layers up to the deepest layer asked for are kept (a head on layer 12 of 30
runs 40% of the backbone); the final norm and LM head never run. Layer outputs are captured by
forward hooks, so a feature is the same whether the backbone was cut at that layer or deeper.
Sequences are batched by length, right-padded, under `batch_tokens` tokens per batch.

The backbone computes in bfloat16 on a GPU and on CPUs that compute it natively (AVX512-BF16 or
AMX: 1.6-2x faster than float32 here), in float32 elsewhere — the rule the policy engine follows
(`vllm_engine.engine_dtype`). Features then differ in the third significant digit between
hosts; a head trained on one reads the other's within that noise (`features_dtype` in a model's
metrics says which it was trained on). transformers and torch are imported when an encoder is built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttscale.errors import BackendError

STEP_FORMAT = "question-answer-v1"
"""Name of the frame below; a trained head records it, and a head trained on another frame is refused."""
QUESTION_TEMPLATE = "Question: {problem}\nAnswer:\n"
STEP_END = "\n\n"
DEFAULT_BATCH_TOKENS = 4096
"""Padded tokens per forward pass: bounds activation memory (the MLP of SmolLM2 holds
batch_tokens × 1536 floats per layer) without one pass per solution."""

Progress = Callable[[int, int], None]
"""Called with (sequences done, sequences in all) after each batch."""


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return bool(set(line.split(":", 1)[1].split()) & {"avx512_bf16", "amx_bf16"})
    return False


@dataclass(frozen=True, slots=True)
class EncodedSolution:
    """A solution's token ids and the index of each step's last token."""

    token_ids: tuple[int, ...]
    step_ends: tuple[int, ...]


class HiddenStateEncoder:
    """A causal LM's decoder cut after `n_layers` layers, reading layer outputs at step ends."""

    def __init__(self, path: Path, n_layers: int, *, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # the library draws no progress bars
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, dtype=torch.float32, local_files_only=True)
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
            self.dtype = "bfloat16" if self.device == "cuda" or native_bf16() else "float32"
        except (OSError, ValueError) as err:
            raise BackendError(" ".join(f"cannot load the backbone at {path}: {err}".split())) from err
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        layers = getattr(model, "layers", None)
        if layers is None:
            raise BackendError(f"backbone at {path}: {type(model).__name__} has no `layers` (a decoder-only LM is needed)")
        total = len(layers)
        if not 1 <= n_layers <= total:
            raise BackendError(f"backbone at {path}: layer {n_layers} asked, it has layers 1-{total}")
        model.layers = layers[:n_layers]
        model.config.num_hidden_layers = n_layers
        model.norm = torch.nn.Identity()
        model = model.to(device=self.device, dtype=getattr(torch, self.dtype)).eval()
        self.model = model
        self.path = path
        self.n_layers = n_layers
        self.n_layers_total = total
        self.hidden_size = int(model.config.hidden_size)
        self.batch_tokens = batch_tokens
        self.n_params = sum(p.numel() for p in model.parameters())
        """Parameters of what runs: the embeddings and the kept layers (FLOPs ≈ 2 · n_params · tokens)."""
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)
        self._lock = threading.Lock()

    def n_params_up_to(self, layer: int) -> int:
        """Parameters that run to read layer `layer`: the embeddings and layers 1..layer."""
        embed = sum(p.numel() for p in self.model.embed_tokens.parameters())
        return embed + sum(p.numel() for block in self.model.layers[:layer] for p in block.parameters())

    def encode_solution(self, problem: str, steps: Sequence[str]) -> EncodedSolution:
        """The token ids of `problem` and `steps` in the frame, each step tokenised on its own."""
        ids = list(self.tokenizer.encode(QUESTION_TEMPLATE.format(problem=problem), add_special_tokens=False))
        ends = []
        for step in steps:
            ids += self.tokenizer.encode(step + STEP_END, add_special_tokens=False)
            ends.append(len(ids) - 1)
        return EncodedSolution(tuple(ids), tuple(ends))

    def step_features(
        self, solutions: Sequence[EncodedSolution], layers: Sequence[int], progress: Progress | None = None
    ) -> list[Any]:
        """Per solution, a float32 array (steps, len(layers), hidden_size): the output of each
        layer of `layers` (1-based, ≤ n_layers) at each step's last token."""
        import numpy as np
        import torch

        if any(not 1 <= layer <= self.n_layers for layer in layers):
            raise BackendError(f"layers {list(layers)}: this encoder has layers 1-{self.n_layers}")
        out: list[Any] = [None] * len(solutions)
        order = sorted(range(len(solutions)), key=lambda i: len(solutions[i].token_ids))
        batches, current, width = [], [], 0
        for i in order:
            length = len(solutions[i].token_ids)
            if current and max(width, length) * (len(current) + 1) > self.batch_tokens:
                batches.append(current)
                current, width = [], 0
            current.append(i)
            width = max(width, length)
        if current:
            batches.append(current)
        captured: dict[int, Any] = {}
        hooks = [
            self.model.layers[layer - 1].register_forward_hook(
                lambda _m, _in, output, layer=layer: captured.__setitem__(layer, output[0] if isinstance(output, tuple) else output)
            )
            for layer in set(layers)
        ]
        done = 0
        try:
            with self._lock, torch.inference_mode():
                for batch in batches:
                    width = max(len(solutions[i].token_ids) for i in batch)
                    ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, i in enumerate(batch):
                        n = len(solutions[i].token_ids)
                        ids[row, :n] = torch.tensor(solutions[i].token_ids, dtype=torch.long)
                        mask[row, :n] = 1
                    captured.clear()
                    self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False)
                    stacked = torch.stack([captured[layer] for layer in layers], dim=2).to("cpu", torch.float32)  # (batch, width, layers, hidden)
                    for row, i in enumerate(batch):
                        ends = torch.tensor(solutions[i].step_ends, dtype=torch.long)
                        out[i] = stacked[row, ends].numpy().astype(np.float32, copy=True)
                    done += len(batch)
                    if progress is not None:
                        progress(done, len(solutions))
        finally:
            for hook in hooks:
                hook.remove()
        return out


_ENCODERS: dict[tuple[str, int], HiddenStateEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(path: Path, n_layers: int) -> HiddenStateEncoder:
    """The encoder of the backbone at `path` cut after `n_layers` layers, built once per process."""
    key = (str(path), n_layers)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = HiddenStateEncoder(path, n_layers)
        return _ENCODERS[key]
