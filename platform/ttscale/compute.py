"""Compute accounting: inference FLOPs from token counts.

A forward pass of a dense decoder costs ≈ 2 · N_params FLOPs per token (Kaplan et al. 2020,
eq. 2.1; used for inference budgets by Snell et al. 2024 §7). Attention's context-length
term is left out, as in those papers. Policy and verifier are counted apart because they can
be different models. Two conventions (docs/fidelity.md): FLOPs *charged* as the reference and
Snell et al. count them (generated tokens), the default axis; FLOPs *computed* by the engine
(prompt tokens not served from its prefix cache, plus generated tokens).
"""

from __future__ import annotations


def flops(n_params: int, n_tokens: int) -> int:
    """FLOPs of running a model of `n_params` parameters over `n_tokens` tokens."""
    return 2 * int(n_params) * int(n_tokens)


def charged_flops(n_params: int, n_generated: int | None) -> int | None:
    """FLOPs as the reference charges a generation: its generated tokens only (Snell et al. 2024
    §7 count inference FLOPs as 2·N·D over generated tokens); None when they were not recorded."""
    return None if n_generated is None else flops(n_params, n_generated)


def computed_flops(n_params: int, n_prompt_computed: int, n_generated: int | None) -> int:
    """FLOPs the engine computed: the prompt tokens its prefix cache did not serve, and the
    generated tokens (a search re-sends its growing path each iteration; most of it is cached)."""
    return flops(n_params, n_prompt_computed + (n_generated or 0))
