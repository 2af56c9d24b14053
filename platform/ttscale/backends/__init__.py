"""Policy backends: vLLM's offline engine (CPU and GPU alike), an OpenAI-compatible HTTP
client for a shared vLLM server, and a scripted policy for tests and dry runs.

Which one a run uses is configuration, never code: the model name `scripted` selects the
scripted policy; `TTSCALE_VLLM_SERVER_URL` selects the HTTP client; otherwise the offline
engine loads the model in this process. Nothing heavy is imported until a policy is built.
"""

from __future__ import annotations

from ttscale.backends.base import Completion, Policy

SCRIPTED_MODEL = "scripted"


def resolve_policy_model(model: str, settings):
    """The ModelInfo of a policy model name, without loading anything (errors name the field)."""
    from ttscale.models import ModelInfo, resolve_model

    if model == SCRIPTED_MODEL:
        return ModelInfo(name=SCRIPTED_MODEL, source="path", n_params=1_000_000, description="scripted test policy")
    return resolve_model(model, settings, field="model")


def load_policy(info, settings, seed: int) -> Policy:
    """Build (or reuse: one engine per process) the policy for a resolved model."""
    if info.name == SCRIPTED_MODEL:
        from ttscale.backends.scripted import ScriptedPolicy, default_respond

        return ScriptedPolicy(default_respond)
    if settings.vllm_server_url:
        from ttscale.backends.openai_http import OpenAIPolicy

        return OpenAIPolicy.for_model(info, settings)
    from ttscale.backends.vllm_engine import get_policy

    return get_policy(info, settings, seed=seed)


__all__ = ["Completion", "Policy", "load_policy", "resolve_policy_model"]
