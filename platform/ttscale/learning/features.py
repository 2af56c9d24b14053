"""Features of the step dataset: the backbone's hidden states at each step prefix's end.

Every row is a step prefix; many rows are prefixes of one another (a k-step solution gives k
rows). The encoder is causal per step (`backends.hidden_states`), so one forward pass over a
solution yields the features of all its prefixes: rows are grouped by problem text, the
longest step lists not already covered as a prefix of another are encoded, and each row reads
its prefix's end from one of them. Features are cached under the dataset folder, keyed by the
backbone, its cut, the layers, the step frame and the rows' text — training again with other
head options reads them back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ttscale.backends.hidden_states import STEP_FORMAT, HiddenStateEncoder
from ttscale.learning.labels import covering_solutions

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def cache_key(encoder: HiddenStateEncoder, layers: Sequence[int], rows: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    head = {"backbone": str(encoder.path), "n_layers_total": encoder.n_layers_total, "layers": list(layers), "format": STEP_FORMAT,
            "dtype": encoder.dtype}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for problem, steps in rows.select("problem", "steps").iter_rows():
        digest.update(json.dumps([problem, steps], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def row_features(
    rows: pl.DataFrame,
    encoder: HiddenStateEncoder,
    layers: Sequence[int],
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, dict]:
    """float32 features (rows, len(layers), hidden) and what it took: solutions encoded, tokens
    read, whether the cache served them."""
    path = cache_dir / f"features-{cache_key(encoder, layers, rows)}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        features = np.load(path, allow_pickle=False)
        if features.shape[0] == rows.height:
            logger.info("features from cache path=%s rows=%d", path, rows.height)
            return features, {"cached": True, "path": str(path)}
    solutions, placed = covering_solutions(rows)
    encoded = [encoder.encode_solution(problem, list(steps)) for problem, steps in solutions]
    per_solution = encoder.step_features(encoded, layers, progress)
    features = np.stack([per_solution[s][k] for s, k in placed]) if placed else np.zeros((0, len(layers), encoder.hidden_size), np.float32)
    info = {"cached": False, "n_solutions": len(solutions), "n_tokens": sum(len(e.token_ids) for e in encoded)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, features)
        tmp.replace(path)
        info["path"] = str(path)
    logger.info("features rows=%d solutions=%d tokens=%d", rows.height, len(solutions), info["n_tokens"])
    return features, info
