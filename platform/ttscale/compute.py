"""Compute accounting: inference FLOPs from token counts.

A forward pass of a dense decoder costs ≈ 2 · N_params FLOPs per token (Kaplan et al. 2020,
eq. 2.1; used for inference budgets by Snell et al. 2024 §7). Attention's context-length
term is left out, as in those papers. Policy and verifier are counted apart because they can
be different models; the prompt is counted once per request (samples share its prefill).
"""

from __future__ import annotations


def flops(n_params: int, n_tokens: int) -> int:
    """FLOPs of running a model of `n_params` parameters over `n_tokens` tokens."""
    return 2 * int(n_params) * int(n_tokens)
