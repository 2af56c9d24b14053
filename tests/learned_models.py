"""A learned-verifier model folder as `ttscale learn train` writes it, without the backbone:
a logistic head fitted on random features, the metrics and dataset card shaped as
`learning.training` and `learning.dataset` write them. For tests that read a folder (the
model-card reader, the dashboard's audit page), not for scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ttscale.learning.head import fit_head
from ttscale.reward_model import RewardModelConfig, write_model_dir

VALIDATION = {
    "n_steps": 736, "n_problems": 7, "n_positive": 102, "step_auc": 0.7062, "step_auc_within": 0.638, "final_auc": 0.7232,
    "final_auc_within": 0.6517, "n_problems_mixed": 5, "n_final": 190, "brier": 0.0624, "ece": 0.0251, "mean_score": 0.12,
    "mean_soft_label": 0.11,
}  # fmt: skip
"""The loop's measured validation metrics (docs/learning.md), as `step_metrics` writes them."""


def card(cells: list[dict]) -> dict:
    """A dataset card (`learning.dataset.build_card`'s keys) naming `cells` as its generating cells."""
    return {
        "kind": "ttscale step dataset", "created_at": "2026-12-06T10:00:00+00:00", "code_version": "abc1234",
        "targets": ["loop-train"], "cells": cells, "label": "Math-Shepherd estimates",
        "split": {"by": "sha256 of salt + problem id", "fractions": [0.6, 0.4, 0.0], "salt": ""},
        "n_nodes": 1904, "n_nodes_labelled": 1196, "n_nodes_unlabelled": 708, "n_candidates": 768, "n_rows": 2978,
        "balance": {"rows": 2978, "labelled": 2274, "hard_positive_share": 0.139, "soft_mean": 0.1235, "final_rows": 768, "problems": 24},
        "soft_label_histogram": {"bins": "[0, 0.1), ..., [0.9, 1]", "counts": [1900, 100, 80, 60, 40, 30, 20, 20, 14, 10]},
        "splits": {
            "train": {"rows": 2000, "labelled": 1538, "hard_positive_share": 0.15, "soft_mean": 0.13, "final_rows": 500, "problems": 17},
            "validation": {"rows": 978, "labelled": 736, "hard_positive_share": 0.139, "soft_mean": 0.11, "final_rows": 268, "problems": 7},
            "test": {"rows": 0, "labelled": 0, "hard_positive_share": None, "soft_mean": None},
        },
        "problem_texts_in_several_splits": 0, "steps_per_row": {"max": 6, "mean": 2.4},
    }  # fmt: skip


def write_learned_model(folder: Path, cells: list[dict], *, validation: dict = VALIDATION) -> str:
    """Write the folder; returns the pinned verifier name `learned:FOLDER@FINGERPRINT`."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8))
    head = fit_head(x, (x[:, 0] > 0).astype(float), "logistic", epochs=20)
    config = RewardModelConfig(backbone="smollm2-135m", layer=4, step_format="question-answer-v1", head="logistic",
                               label="soft", n_features=8, backbone_n_params=56_600_000, head_n_params=head.n_params)  # fmt: skip
    data = card(cells)
    metrics = {
        "chosen": {"layer": 4, "head": "logistic", "l2": 0.1, "label": "soft"},
        "train": {**validation, "step_auc": 0.8282, "n_steps": 1538, "n_problems": 17},
        "validation": validation,
        "runs": [{"layer": 4, "head": "logistic", "l2": 0.1, "validation": validation}],
        "dataset": {"path": str(folder.parent / "steps"), "card_sha256": "0" * 64, "card": data},
        "n_labelled_steps": {"train": 1538, "validation": 736, "test": 0},
        "elapsed_s": 1.0,
    }
    fingerprint = write_model_dir(folder, config, head, metrics, data)
    return f"learned:{folder.absolute()}@{fingerprint}"
