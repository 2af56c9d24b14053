"""`learned:PATH`: a reward head trained by `ttscale learn train` on the policy's own search trees.

The folder PATH (`ttscale.reward_model`) names a backbone (the bundled SmolLM2-135M by default),
the decoder layer the head reads and the head. To score, each solution is framed and tokenised
step by step (`backends.hidden_states`), the backbone runs up to that layer — one forward pass
per solution, all solutions of a call batched — and the head maps the layer's output at each
step's last token to a score in [0, 1]. Causal: step i's score depends on the problem and
steps[:i+1] only, so `CachingVerifier` and the searches can use it.

FLOPs are the verifier's own, counted apart from the policy's: `n_params` is the backbone's
parameters it runs (embeddings and layers 1..layer) plus the head's, and `n_tokens` every token
it read. `PATH@FINGERPRINT` pins the folder's contents (see `ttscale.reward_model`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.backends.hidden_states import STEP_FORMAT, HiddenStateEncoder, get_encoder
from ttscale.errors import SpecError
from ttscale.models import ensure_local_weights, resolve_model
from ttscale.reward_model import RewardModel, load_model_dir, model_dir_error
from ttscale.settings import Settings
from ttscale.verifiers import VERIFIERS, argument_check
from ttscale.verifiers.base import StepScores


class LearnedVerifier:
    def __init__(self, name: str, model: RewardModel, encoder: HiddenStateEncoder) -> None:
        if model.config.step_format != STEP_FORMAT:
            raise SpecError(f"verifier: {model.folder} was trained on step frame {model.config.step_format!r}, this ttscale frames steps as {STEP_FORMAT!r}")
        self.name = name
        self.model = model
        self.encoder = encoder
        self.n_params = encoder.n_params + model.head.n_params
        self.fingerprint = model.fingerprint

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        todo = [i for i, steps in enumerate(solutions) if len(steps) > start[i]]
        encoded = {i: self.encoder.encode_solution(problems[i], solutions[i]) for i in todo}
        features = self.encoder.step_features([encoded[i] for i in todo], [self.model.config.layer]) if todo else []
        got = dict(zip(todo, features, strict=True))
        out = []
        for i in range(len(solutions)):
            if i not in got:
                out.append(StepScores((), 0))
                continue
            scores = self.model.head.predict(got[i][start[i]:, 0, :])
            out.append(StepScores(tuple(float(s) for s in scores), len(encoded[i].token_ids)))
        return out


@argument_check("learned")
def check_model_dir(argument: str) -> str | None:
    return model_dir_error(argument)


@VERIFIERS.register("learned", "A reward head trained by `ttscale learn train` on stored search trees (CPU)", argument="PATH")
def make_learned(policy, settings: Settings, argument: str) -> LearnedVerifier:  # noqa: ANN001 (registry signature)
    del policy
    model = load_model_dir(argument)
    backbone = ensure_local_weights(resolve_model(model.config.backbone, settings, field="verifier"), settings)
    encoder = get_encoder(backbone, model.config.layer)
    if encoder.hidden_size != model.config.n_features:
        raise SpecError(f"verifier: {model.folder} expects {model.config.n_features} features, backbone {model.config.backbone} gives {encoder.hidden_size}")
    return LearnedVerifier(f"learned:{argument}", model, encoder)
