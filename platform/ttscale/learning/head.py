"""Fit a reward head on frozen features: logistic regression or a one-hidden-layer MLP (numpy).

Both minimise the mean binary cross-entropy against the label (a soft label in [0, 1] is a
valid target: the loss is then minimised at p = label) plus ½·l2·‖W‖² on the weights (not the
biases), by full-batch Adam (Kingma & Ba 2015) on standardised features. With validation data
the parameters at the lowest validation loss are kept (early stopping; checked every
`check_every` epochs). Seeded by argument: the same data and seed give the same head.

A CPU fits either in seconds at this scale (thousands of steps × 576 features); the
features are the costly part (`learning.features`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ttscale.reward_model import HeadKind, RewardHead

HEAD_KINDS: tuple[HeadKind, ...] = ("logistic", "mlp")


def _bce(logits: np.ndarray, y: np.ndarray) -> float:
    # log(1 + e^z) − y·z, stable for large |z|
    return float(np.mean(np.logaddexp(0.0, logits) - y * logits))


def fit_head(
    x: Any,
    y: Any,
    kind: HeadKind,
    *,
    l2: float = 1e-2,
    hidden: int = 64,
    epochs: int = 400,
    lr: float = 1e-2,
    seed: int = 0,
    x_val: Any = None,
    y_val: Any = None,
    check_every: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> RewardHead:
    """A head fitted to features `x` (n, d) and targets `y` (n,) in [0, 1]."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"head kind must be one of {HEAD_KINDS}, got {kind!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    rng = np.random.default_rng(seed)
    prior = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    bias = np.log(prior / (1 - prior))
    if kind == "logistic":
        params = {"w": np.zeros(d), "b": np.array(bias)}
    else:
        params = {
            "w1": rng.normal(0.0, np.sqrt(2.0 / d), (d, hidden)),
            "b1": np.zeros(hidden),
            "w2": rng.normal(0.0, np.sqrt(1.0 / hidden) * 0.1, hidden),
            "b2": np.array(bias),
        }
    decayed = [k for k in params if k.startswith("w")]
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    zv = None if x_val is None or len(x_val) == 0 else (np.asarray(x_val, dtype=np.float64) - mean) / scale
    yv = None if zv is None else np.asarray(y_val, dtype=np.float64)
    best: tuple[float, dict] | None = None

    def forward(inputs: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        if kind == "logistic":
            return inputs @ p["w"] + p["b"], None, None
        pre = inputs @ p["w1"] + p["b1"]
        h = np.maximum(pre, 0.0)
        return h @ p["w2"] + p["b2"], h, pre

    for epoch in range(1, epochs + 1):
        logits, h, pre = forward(z, params)
        g = (1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60))) - y) / n
        if kind == "logistic":
            grads = {"w": z.T @ g, "b": np.array(g.sum())}
        else:
            assert h is not None and pre is not None
            dh = np.outer(g, params["w2"]) * (pre > 0)
            grads = {"w2": h.T @ g, "b2": np.array(g.sum()), "w1": z.T @ dh, "b1": dh.sum(axis=0)}
        for k in decayed:
            grads[k] = grads[k] + l2 * params[k]
        for k in params:
            m[k] = beta1 * m[k] + (1 - beta1) * grads[k]
            v2[k] = beta2 * v2[k] + (1 - beta2) * grads[k] ** 2
            step = lr * (m[k] / (1 - beta1**epoch)) / (np.sqrt(v2[k] / (1 - beta2**epoch)) + eps)
            params[k] = params[k] - step
        if zv is not None and (epoch % check_every == 0 or epoch == epochs):
            loss = _bce(forward(zv, params)[0], yv)
            if best is None or loss < best[0]:
                best = (loss, {k: v.copy() for k, v in params.items()})
        if progress is not None and (epoch % check_every == 0 or epoch == epochs):
            progress(epoch, epochs)
    chosen = best[1] if best is not None else params
    return RewardHead(kind, {"mean": mean, "scale": scale, **chosen})
