"""A learned verifier's model folder: a reward head on a frozen backbone's hidden states.

`ttscale learn train` writes the folder; the `learned:PATH` verifier reads it. It holds

- `config.json`: the backbone (a registered model name), the layer whose output the head
  reads, the step frame (`backends.hidden_states.STEP_FORMAT`), the label trained on;
- `head.npz`: the head's arrays — the feature standardisation and the weights;
- `metrics.json`: validation and test metrics, the runs that chose the head, and the dataset
  card it was trained from (with the card's sha256);
- `card.json`: that dataset card, as written by `ttscale learn dataset`.

Its **fingerprint** is the sha256 (first 12 hex) of config.json, head.npz and metrics.json:
a verifier named `learned:PATH@FINGERPRINT` is refused when the folder holds anything else, so a
cell's spec names exactly the model it ran with (the cell id hashes the spec). `ttscale run`
pins the fingerprint itself; in a sweep spec write the pinned name `ttscale learn train` prints.

The head is plain numpy (no torch): p = sigmoid(f(z)), z = (x − mean) / scale, with f linear
(`logistic`) or one hidden ReLU layer (`mlp`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ttscale.errors import SpecError

HeadKind = Literal["logistic", "mlp"]
LEARNED_PREFIX = "learned:"
SHORT_FINGERPRINT_HEX = 8
"""Hex digits of the fingerprint a display name keeps (`short_name`)."""
CONFIG_FILE, HEAD_FILE, METRICS_FILE, CARD_FILE = "config.json", "head.npz", "metrics.json", "card.json"
FINGERPRINT_FILES = (CONFIG_FILE, HEAD_FILE, METRICS_FILE)
FINGERPRINT_HEX = 12
_PIN = re.compile(r"^[0-9a-f]{12}$")
_ARRAYS = {"logistic": ("mean", "scale", "w", "b"), "mlp": ("mean", "scale", "w1", "b1", "w2", "b2")}


@dataclass(frozen=True)
class RewardHead:
    """Head weights over standardised features; `predict` gives P(step leads to a right answer)."""

    kind: HeadKind
    arrays: dict[str, Any]
    """numpy arrays: `mean`, `scale` (d,), and `w` (d,), `b` () or `w1` (d, h), `b1` (h,), `w2` (h,), `b2` ()."""

    def logits(self, x: Any) -> Any:
        import numpy as np

        a = self.arrays
        z = (np.asarray(x, dtype=np.float64) - a["mean"]) / a["scale"]
        if self.kind == "logistic":
            return z @ a["w"] + a["b"]
        return np.maximum(z @ a["w1"] + a["b1"], 0.0) @ a["w2"] + a["b2"]

    def predict(self, x: Any) -> Any:
        """Probabilities in [0, 1] for rows of features `x` (n, d)."""
        import numpy as np

        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(x), -60.0, 60.0)))

    @property
    def n_params(self) -> int:
        """Weights and biases (the standardisation folds into the first layer)."""
        return int(sum(v.size for k, v in self.arrays.items() if k not in ("mean", "scale")))

    @property
    def n_features(self) -> int:
        return int(self.arrays["mean"].shape[0])


@dataclass(frozen=True)
class RewardModelConfig:
    backbone: str
    """The backbone model: a registered name (`smollm2-135m`) or a local folder."""
    layer: int
    """Decoder layer (1-based) whose output the head reads; only layers 1..layer run."""
    step_format: str
    """How a solution is framed into tokens (`backends.hidden_states.STEP_FORMAT`)."""
    head: HeadKind
    label: Literal["soft", "hard"]
    """The target the head was fitted to: `soft` (share of right candidates below the step) or `hard` (any)."""
    n_features: int
    backbone_n_params: int
    """Parameters the verifier runs of the backbone: embeddings and layers 1..layer."""
    head_n_params: int

    @property
    def n_params(self) -> int:
        """What one scored token costs, for FLOPs ≈ 2 · n_params · tokens: backbone part and head."""
        return self.backbone_n_params + self.head_n_params


def save_head(path: Path, head: RewardHead) -> None:
    import numpy as np

    with path.open("wb") as f:
        np.savez(f, kind=np.array(head.kind), **{k: np.asarray(v, dtype=np.float64) for k, v in head.arrays.items()})


def load_head(path: Path) -> RewardHead:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        kind = str(data["kind"])
        if kind not in _ARRAYS:
            raise SpecError(f"{path}: unknown head kind {kind!r}")
        missing = [k for k in _ARRAYS[kind] if k not in data]
        if missing:
            raise SpecError(f"{path}: head arrays missing: {', '.join(missing)}")
        return RewardHead(kind, {k: np.array(data[k]) for k in _ARRAYS[kind]})  # type: ignore[arg-type]


def write_model_dir(out: Path, config: RewardModelConfig, head: RewardHead, metrics: dict, card: dict | None) -> str:
    """Write the folder's files; returns the fingerprint of what was written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    save_head(out / HEAD_FILE, head)
    if card is not None:
        (out / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return fingerprint(out)


def fingerprint(folder: Path) -> str:
    """sha256 (first 12 hex) over the folder's config, head and metrics files, names and bytes."""
    return fingerprint_of({name: (folder / name).read_bytes() for name in FINGERPRINT_FILES})


def fingerprint_of(contents: Mapping[str, bytes]) -> str:
    """The fingerprint of `FINGERPRINT_FILES` given their bytes (`contents[name]`): for a reader
    that hashes exactly the bytes it goes on to parse."""
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        data = contents[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:FINGERPRINT_HEX]


def split_pin(argument: str) -> tuple[str, str | None]:
    """`PATH@FINGERPRINT` → (PATH, FINGERPRINT); `PATH` → (PATH, None). A suffix after the last
    `@` that is not 12 lowercase hex digits belongs to the path."""
    path, at, pin = argument.rpartition("@")
    if at and path and _PIN.match(pin):
        return path, pin
    return argument, None


def short_name(verifier: str) -> str:
    """The display name of a verifier: `learned:FOLDER@12345678` (the folder's last path part and
    the first `SHORT_FINGERPRINT_HEX` hex of its fingerprint) for `learned:/abs/path/FOLDER@FINGERPRINT`;
    any other name as it is. The stored name stays the full one."""
    if not verifier.startswith(LEARNED_PREFIX):
        return verifier
    path, pin = split_pin(verifier[len(LEARNED_PREFIX) :])
    folder = PurePosixPath(path.rstrip("/")).name or path
    return f"{LEARNED_PREFIX}{folder}" + (f"@{pin[:SHORT_FINGERPRINT_HEX]}" if pin else "")


def short_names(verifiers: Iterable[str | None]) -> dict[str, str]:
    """Stored name → display name for each distinct verifier (`short_name`), keeping the full
    name of any two whose short names would coincide (two folders of one name, unpinned), so a
    display name always names one verifier."""
    names = sorted({v for v in verifiers if v is not None})
    short = {v: short_name(v) for v in names}
    taken: dict[str, int] = {}
    for s in short.values():
        taken[s] = taken.get(s, 0) + 1
    return {v: s if taken[s] == 1 else v for v, s in short.items()}


def model_dir_error(argument: str) -> str | None:
    """Why `learned:ARGUMENT` cannot be loaded (folder, files, config, pinned fingerprint), or None."""
    path_text, pin = split_pin(argument)
    folder = Path(path_text).expanduser()
    if not folder.is_dir():
        return f"learned model folder {path_text!r} does not exist (train one with `ttscale learn train`)"
    missing = [n for n in FINGERPRINT_FILES if not (folder / n).is_file()]
    if missing:
        return f"learned model folder {path_text!r} lacks {', '.join(missing)} (not written by `ttscale learn train`?)"
    try:
        read_config(folder)
    except SpecError as err:
        return str(err)
    if pin is not None:
        actual = fingerprint(folder)
        if actual != pin:
            return f"learned model {path_text!r} has fingerprint {actual}, the name pins {pin}"
    return None


def read_config(folder: Path) -> RewardModelConfig:
    try:
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        return RewardModelConfig(**data)
    except (OSError, ValueError, TypeError) as err:
        raise SpecError(f"{folder / CONFIG_FILE}: not a learned-verifier config ({type(err).__name__}: {err})"[:300]) from None


@dataclass(frozen=True)
class RewardModel:
    """A loaded model folder."""

    folder: Path
    config: RewardModelConfig
    head: RewardHead
    fingerprint: str


def load_model_dir(argument: str) -> RewardModel:
    """The model folder `learned:ARGUMENT` names (PATH or PATH@FINGERPRINT), checked."""
    error = model_dir_error(argument)
    if error:
        raise SpecError(f"verifier: {error}")
    folder = Path(split_pin(argument)[0]).expanduser().absolute()
    config = read_config(folder)
    head = load_head(folder / HEAD_FILE)
    if head.n_features != config.n_features:
        raise SpecError(f"{folder}: head has {head.n_features} features, config says {config.n_features}")
    return RewardModel(folder, config, head, fingerprint(folder))


def pinned_name(argument: str, field: str = "--verifier") -> str:
    """`learned:ABSOLUTE_PATH@FINGERPRINT` for a model folder named by a relative or unpinned
    path (what `ttscale run` and `ttscale sweep` store in the cell's spec); SpecError naming
    `field` when it cannot be loaded."""
    error = model_dir_error(argument)
    if error:
        raise SpecError(f"{field}: {error}")
    path_text, _ = split_pin(argument)
    folder = Path(path_text).expanduser().absolute()
    return f"learned:{folder}@{fingerprint(folder)}"
