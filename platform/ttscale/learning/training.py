"""`train_verifier`: a step dataset folder in, a learned-verifier model folder out.

1. the labelled rows of the dataset (a step with at least one graded candidate below it);
2. their features at each layer of `layers` from one pass of the backbone cut at the deepest
   (`learning.features`, cached under the dataset folder);
3. for every layer × head kind × l2: a head fitted on the train split (early-stopped on
   validation loss), scored on validation; the best validation step AUC wins (ties: lower
   Brier score);
4. the winner's metrics on train, validation and test, every run's validation metrics, the
   dataset card and its sha256 go to metrics.json; config, head and card beside it
   (`ttscale.reward_model`).

What a GPU worker would run instead — a full process reward model fine-tuned with TRL's
`PRMTrainer` on the same rows — is in docs/learning.md; it is not run here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from ttscale.backends.hidden_states import STEP_FORMAT, get_encoder
from ttscale.errors import DataError, SpecError
from ttscale.learning.dataset import card_sha256, read_dataset
from ttscale.learning.features import row_features
from ttscale.learning.head import HEAD_KINDS, fit_head
from ttscale.learning.metrics import step_metrics
from ttscale.models import ModelInfo, ensure_local_weights, resolve_model
from ttscale.reward_model import HeadKind, RewardModelConfig, write_model_dir
from ttscale.settings import Settings

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total): stage `features` (solutions encoded) or `heads` (heads fitted)."""

DEFAULT_LAYERS = (4, 8)
"""Layers of SmolLM2-135M's 30 read by default: scoring runs at most 8 (27% of the backbone).
On 30 ladder problems' trees (2,897 labelled steps, 8 validation problems) layers 4, 8, 12 and
16 ranked steps alike (validation step AUC 0.60-0.65, within noise); deeper costs more per step."""


@dataclass(frozen=True)
class TrainOptions:
    backbone: str = "smollm2-135m"
    """Model whose hidden states the head reads: a registered name or a local folder."""
    layers: tuple[int, ...] = DEFAULT_LAYERS
    """Decoder layers (1-based) tried; the chosen one is where the verifier stops the backbone."""
    heads: tuple[HeadKind, ...] = HEAD_KINDS
    l2: tuple[float, ...] = (1e-2, 1e-1, 1.0)
    """Weight decay values tried per layer and head."""
    label: Literal["soft", "hard"] = "soft"
    hidden: int = 64
    """Hidden units of the MLP head."""
    epochs: int = 400
    seed: int = 0


@dataclass(frozen=True)
class TrainReport:
    out: Path
    fingerprint: str
    config: RewardModelConfig
    metrics: dict

    @property
    def verifier_name(self) -> str:
        """The pinned verifier name to use in specs."""
        return f"learned:{self.out}@{self.fingerprint}"


def check_options(options: TrainOptions) -> None:
    if not options.layers or any(layer < 1 for layer in options.layers):
        raise SpecError(f"--layers: give layers >= 1, got {list(options.layers)}")
    bad = [h for h in options.heads if h not in HEAD_KINDS]
    if bad or not options.heads:
        raise SpecError(f"--head: unknown {bad[0] if bad else 'none'!r}; allowed: {', '.join(HEAD_KINDS)}")
    if options.label not in ("soft", "hard"):
        raise SpecError(f"--label: must be soft or hard, got {options.label!r}")
    if options.epochs < 1 or options.hidden < 1 or any(v < 0 for v in options.l2) or not options.l2:
        raise SpecError("--epochs, --hidden must be >= 1 and --l2 values >= 0")


def labelled_sizes(labelled: pl.DataFrame) -> dict[str, int]:
    """Labelled steps per split."""
    return {name: labelled.filter(pl.col("split") == name).height for name in ("train", "validation", "test")}


def check_training(dataset_dir: Path, settings: Settings, options: TrainOptions = TrainOptions()) -> None:
    """Every check `train_verifier` makes before it loads the backbone (options, the dataset
    folder, labelled train and validation steps with both labels, the backbone's name): a
    SpecError or DataError, nothing written."""
    _checked_input(dataset_dir, settings, options)


def _checked_input(dataset_dir: Path, settings: Settings, options: TrainOptions) -> tuple[pl.DataFrame, dict, pl.DataFrame, ModelInfo]:
    check_options(options)
    rows, card = read_dataset(dataset_dir)
    labelled = rows.filter(pl.col("n_candidates") > 0)
    sizes = labelled_sizes(labelled)
    if sizes["train"] == 0 or sizes["validation"] == 0:
        raise DataError(f"DIR: {dataset_dir} has {sizes['train']} labelled train and {sizes['validation']} validation steps; "
                        "both are needed (more problems, or other --split fractions in `ttscale learn dataset`)")  # fmt: skip
    train_pos = labelled.filter(pl.col("split") == "train")["label_hard"]
    if train_pos.all() or not train_pos.any():
        raise DataError(f"DIR: every labelled train step of {dataset_dir} has the same hard label: nothing to learn")
    return rows, card, labelled, resolve_model(options.backbone, settings, field="--backbone")


def train_verifier(
    dataset_dir: Path, out: Path, settings: Settings, options: TrainOptions = TrainOptions(), progress: Progress | None = None
) -> TrainReport:
    """Train on `dataset_dir`, write the model folder `out`; see the module docstring."""
    start = time.perf_counter()
    rows, card, labelled, info = _checked_input(dataset_dir, settings, options)
    sizes = labelled_sizes(labelled)
    encoder = get_encoder(ensure_local_weights(info, settings), max(options.layers))
    features, feature_info = row_features(
        labelled, encoder, options.layers, dataset_dir / "features", (lambda d, t: progress("features", d, t)) if progress else None
    )
    target = labelled["label_soft" if options.label == "soft" else "label_hard"].cast(pl.Float64).to_numpy()
    masks = {name: (labelled["split"] == name).to_numpy() for name in ("train", "validation", "test")}
    runs = []
    grid = [(li, layer, kind, l2) for li, layer in enumerate(options.layers) for kind in options.heads for l2 in options.l2]
    best = None
    for done, (li, layer, kind, l2) in enumerate(grid, start=1):
        x = features[:, li, :]
        head = fit_head(
            x[masks["train"]], target[masks["train"]], kind, l2=l2, hidden=options.hidden, epochs=options.epochs,
            seed=options.seed, x_val=x[masks["validation"]], y_val=target[masks["validation"]],
        )  # fmt: skip
        val = _metrics(head.predict(x[masks["validation"]]), labelled.filter(pl.Series(masks["validation"])))
        runs.append({"layer": layer, "head": kind, "l2": l2, "validation": val})
        key = (val["step_auc"] if val["step_auc"] is not None else 0.0, -val["brier"])
        if best is None or key > best[0]:
            best = (key, li, layer, kind, l2, head)
        logger.info("head layer=%d kind=%s l2=%g val_auc=%s val_brier=%.4f", layer, kind, l2, val["step_auc"], val["brier"])
        if progress is not None:
            progress("heads", done, len(grid))
    assert best is not None
    _, li, layer, kind, l2, head = best
    x = features[:, li, :]
    scores = head.predict(x)
    metrics = {
        "chosen": {"layer": layer, "head": kind, "l2": l2, "label": options.label},
        **{name: _metrics(scores[mask], labelled.filter(pl.Series(mask))) for name, mask in masks.items() if mask.any()},
        "runs": runs,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
        "features": {**feature_info, "layers": list(options.layers), "backbone": options.backbone, "features_dtype": encoder.dtype},
        "dataset": {"path": str(dataset_dir.absolute()), "card_sha256": card_sha256(dataset_dir), "card": card},
        "n_labelled_steps": sizes,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    config = RewardModelConfig(
        backbone=options.backbone, layer=layer, step_format=STEP_FORMAT, head=kind, label=options.label,
        n_features=encoder.hidden_size, backbone_n_params=encoder.n_params_up_to(layer), head_n_params=head.n_params,
    )  # fmt: skip
    fingerprint = write_model_dir(out, config, head, metrics, card)
    logger.info("trained out=%s layer=%d head=%s val_auc=%s elapsed_s=%.1f", out, layer, kind,
                metrics["validation"]["step_auc"], metrics["elapsed_s"])  # fmt: skip
    return TrainReport(out.absolute(), fingerprint, config, metrics)


def _metrics(scores: np.ndarray, rows: pl.DataFrame) -> dict:
    return step_metrics(scores, rows["label_soft"].to_numpy(), rows["label_hard"].to_numpy(), rows["is_final"].to_numpy(),
                        (rows["dataset"] + "/" + rows["problem_id"]).to_numpy())
