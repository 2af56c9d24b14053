"""What a stored `learned:PATH@FINGERPRINT` verifier was trained on and how well it did, for the
dashboard's audit page: the model folder's metrics and the dataset card they carry.

The name comes from the store, so the folder is untrusted input. It is read only when

- the stored name pins a fingerprint and its path is absolute;
- the path, with every symlink resolved, lies under an allowed root (the model cache or
  `$TTSCALE_HOME`, `allowed_roots`), and so does each file read from it (a file may be a symlink);
- each fingerprinted file is a regular file within a size limit (`files.open_regular`: a FIFO or
  a device is refused without blocking);
- the fingerprint of exactly the bytes read (`reward_model.fingerprint_of`) equals the pinned one.

The metrics and the card are then parsed from those same bytes: the card is the copy inside
`metrics.json` (covered by the fingerprint, unlike the folder's `card.json`). Anything else gives
a `ModelCard` whose `refusal` says in one line why it was not read; nothing here raises on bad
input. Values are taken field by field with their types checked, so garbled JSON shows as
missing values, never as an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttscale.errors import DataError
from ttscale.files import MIB, open_regular
from ttscale.reward_model import CONFIG_FILE, FINGERPRINT_FILES, HEAD_FILE, LEARNED_PREFIX, METRICS_FILE, fingerprint_of, split_pin
from ttscale.settings import Settings

MAX_BYTES = {CONFIG_FILE: 1 * MIB, HEAD_FILE: 64 * MIB, METRICS_FILE: 16 * MIB}
"""What `ttscale learn train` writes is far smaller (config < 1 KiB, a 64-unit MLP head on 576
features ~300 KiB, metrics with the card a few KiB per generating cell); past these a folder is
refused rather than read."""
SPLITS = ("train", "validation", "test")
METRIC_KEYS = ("step_auc", "step_auc_within", "final_auc", "final_auc_within", "brier", "ece", "n_steps", "n_problems", "n_positive")
MAX_CELLS = 1000
"""Generating cells listed from a card (a card naming more says how many it left out)."""
MAX_TEXT = 200
"""Characters kept of any string from the folder."""


@dataclass(frozen=True)
class ModelCard:
    """A learned verifier's folder as the audit page shows it; `refusal` set when it was not read."""

    verifier: str
    """The stored name, `learned:PATH@FINGERPRINT`."""
    folder: str
    fingerprint: str | None
    """The pinned fingerprint (from the name)."""
    refusal: str | None = None
    """One line: why the folder was not read (outside the allowed roots, missing, fingerprint
    mismatch, unreadable); None when it was."""
    config: dict[str, Any] = field(default_factory=dict)
    """backbone, layer, head, label, n_features (`reward_model.RewardModelConfig`)."""
    chosen: dict[str, Any] = field(default_factory=dict)
    """The head training chose on validation: layer, head, l2, label."""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """split → `METRIC_KEYS` (`learning.metrics.step_metrics`), for the splits it has."""
    card: dict[str, Any] = field(default_factory=dict)
    """The dataset card in brief: created_at, code_version, targets, split, counts, balance, splits."""
    cells: list[dict[str, Any]] = field(default_factory=list)
    """The card's generating cells (cell_id, model, strategy, verifier, n, dataset, seed), at most `MAX_CELLS`."""
    n_cells: int = 0
    """How many generating cells the card names."""
    card_sha256: str | None = None


def is_learned(verifier: str | None) -> bool:
    return bool(verifier) and verifier.startswith(LEARNED_PREFIX)


def allowed_roots(settings: Settings) -> tuple[Path, ...]:
    """The folders a stored model path may lie in: the model cache and `$TTSCALE_HOME`."""
    return (settings.model_cache, settings.home)


def read_model_card(verifier: str, roots: tuple[Path, ...]) -> ModelCard:
    """The metrics and data card of the model folder a stored `learned:PATH@FINGERPRINT` names,
    read only under `roots` and only if its fingerprint matches (module docstring)."""
    argument = verifier[len(LEARNED_PREFIX) :] if is_learned(verifier) else ""
    path_text, pin = split_pin(argument)
    base = ModelCard(verifier=verifier, folder=path_text, fingerprint=pin)
    try:
        contents = _read_pinned(path_text, pin, roots)
    except _Refused as why:
        return _refused(base, str(why))
    try:
        config = json.loads(contents[CONFIG_FILE].decode("utf-8"))
        metrics = json.loads(contents[METRICS_FILE].decode("utf-8"))
    except (ValueError, RecursionError):
        return _refused(base, "unreadable: config.json or metrics.json is not JSON (the folder's fingerprint matches its name, but not what `ttscale learn train` writes)")
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        return _refused(base, "unreadable: config.json or metrics.json is not a JSON object")
    dataset = _dict(metrics.get("dataset"))
    card = _dict(dataset.get("card"))
    cells = [c for c in card.get("cells", []) if isinstance(c, dict)] if isinstance(card.get("cells"), list) else []
    return ModelCard(
        verifier=verifier,
        folder=path_text,
        fingerprint=pin,
        config=_pick(config, ("backbone", "layer", "head", "label", "n_features", "backbone_n_params", "head_n_params")),
        chosen=_pick(_dict(metrics.get("chosen")), ("layer", "head", "l2", "label")),
        metrics={s: _pick(_dict(metrics[s]), METRIC_KEYS) for s in SPLITS if isinstance(metrics.get(s), dict)},
        card=_card_summary(card),
        cells=[_pick(c, ("cell_id", "model", "strategy", "verifier", "n", "dataset", "seed", "n_problems_done")) for c in cells[:MAX_CELLS]],
        n_cells=len(cells),
        card_sha256=_text(dataset.get("card_sha256")),
    )


class _Refused(Exception):
    """Why a folder is not read (internal: `read_model_card` turns it into a refusal line)."""


def _refused(base: ModelCard, why: str) -> ModelCard:
    return ModelCard(verifier=base.verifier, folder=base.folder, fingerprint=base.fingerprint, refusal=why)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as err:  # a symlink loop, a NUL byte
        raise _Refused(f"unreadable: {str(path)[:MAX_TEXT]!r} cannot be resolved ({type(err).__name__})") from None


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _read_pinned(path_text: str, pin: str | None, roots: tuple[Path, ...]) -> dict[str, bytes]:
    """The fingerprinted files' bytes, each read only under `roots`, if their fingerprint is `pin`."""
    if pin is None or not path_text:
        raise _Refused("not read: the stored verifier name pins no fingerprint (learned:PATH@FINGERPRINT)")
    given = Path(path_text)
    if not given.is_absolute():
        raise _Refused(f"not read: {path_text[:MAX_TEXT]!r} is not an absolute path")
    allowed = tuple(_resolve(root) for root in roots)
    folder = _resolve(given)
    if not _under(folder, allowed):
        places = " or ".join(str(r) for r in allowed)
        raise _Refused(f"not read: {path_text[:MAX_TEXT]!r} is not under an allowed root ({places}: the model cache, $TTSCALE_HOME)")
    try:
        is_folder = folder.is_dir()
    except OSError:  # a name too long, a permission denied on the way
        is_folder = False
    if not is_folder:
        raise _Refused(f"missing: {path_text[:MAX_TEXT]!r} is not a folder here (moved, deleted, or trained on another machine)")
    contents = {}
    for name in FINGERPRINT_FILES:
        target = _resolve(folder / name)
        if not _under(target, allowed):
            raise _Refused(f"not read: {name} in {path_text[:MAX_TEXT]!r} is a link out of the allowed roots")
        try:
            with open_regular(target, name, max_bytes=MAX_BYTES[name], error=DataError) as f:
                data = f.read(MAX_BYTES[name] + 1)
        except DataError as err:
            raise _Refused(f"unreadable: {str(err)[:MAX_TEXT * 2]}") from None
        if len(data) > MAX_BYTES[name]:
            raise _Refused(f"unreadable: {name} grew past {MAX_BYTES[name] // MIB} MiB while read")
        contents[name] = data
    actual = fingerprint_of(contents)
    if actual != pin:
        raise _Refused(f"fingerprint mismatch: the folder now holds {actual}, the cell ran with {pin} (retrained or edited since)")
    return contents


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def _value(value: Any) -> Any:
    """A number or a short string from the folder; anything else (lists, objects, NaN) is None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return _text(value)


def _pick(source: dict, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: _value(source.get(k)) for k in keys}


def _card_summary(card: dict) -> dict[str, Any]:
    balance_keys = ("rows", "labelled", "hard_positive_share", "soft_mean", "problems")
    split = _dict(card.get("split"))
    fractions = split.get("fractions")
    splits = _dict(card.get("splits"))
    targets = card.get("targets")
    return {
        **_pick(card, ("created_at", "code_version", "n_nodes", "n_nodes_labelled", "n_nodes_unlabelled", "n_candidates", "n_rows")),
        "targets": [t[:MAX_TEXT] for t in targets[:20] if isinstance(t, str)] if isinstance(targets, list) else [],
        "split_by": _text(split.get("by")),
        "split_fractions": [_value(f) for f in fractions[:3]] if isinstance(fractions, list) else [],
        "balance": _pick(_dict(card.get("balance")), balance_keys),
        "splits": {name: _pick(_dict(splits[name]), balance_keys) for name in SPLITS if isinstance(splits.get(name), dict)},
    }
