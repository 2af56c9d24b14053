"""Policy backends: vLLM's offline engine (CPU and GPU alike), an OpenAI-compatible HTTP
client for a shared vLLM server, and a scripted policy for tests and dry runs.

Which one a run uses is configuration, never code: the model name `scripted` selects the
scripted policy; `TTSCALE_VLLM_SERVER_URL` selects the HTTP client; otherwise the offline
engine loads the model in this process. Importing these modules is cheap: vLLM itself is
imported by `vllm_engine` only when an engine starts.
"""

from __future__ import annotations

from ttscale.backends import vllm_engine
from ttscale.backends.base import Completion, GenerationRequest, Policy
from ttscale.backends.openai_http import OpenAIPolicy
from ttscale.backends.scripted import ScriptedPolicy, default_respond
from ttscale.models import ModelInfo, resolve_model
from ttscale.settings import Settings

SCRIPTED_MODEL = "scripted"


def resolve_policy_model(model: str, settings: Settings) -> ModelInfo:
    """The ModelInfo of a policy model name, without loading anything (errors name the field)."""
    if model == SCRIPTED_MODEL:
        return ModelInfo(name=SCRIPTED_MODEL, source="path", n_params=1_000_000, description="scripted test policy")
    return resolve_model(model, settings, field="model")


def load_policy(info: ModelInfo, settings: Settings, seed: int) -> Policy:
    """Build (or reuse: one engine per process) the policy for a resolved model."""
    if info.name == SCRIPTED_MODEL:
        return ScriptedPolicy(default_respond)
    if settings.vllm_server_url:
        return OpenAIPolicy.for_model(info, settings)
    return vllm_engine.get_policy(info, settings, seed=seed)


def release_engines() -> None:
    """Stop the engines this process holds. A vLLM engine runs in a child process that the
    interpreter otherwise waits for at exit (multiprocessing joins its children), so every
    entry point that may have loaded one calls this (through `runner.release_policies`)."""
    vllm_engine.shutdown_all()


__all__ = ["Completion", "GenerationRequest", "Policy", "load_policy", "release_engines", "resolve_policy_model"]
