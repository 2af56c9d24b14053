"""The model-card reader (`learning.model_card`): a stored `learned:PATH@FINGERPRINT` is read only
under the allowed roots and only when its fingerprint matches; hostile names and folders give one
line saying why not, never an exception."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.learned_models import VALIDATION, write_learned_model
from ttscale.learning.model_card import allowed_roots, is_learned, read_model_card
from ttscale.reward_model import fingerprint
from ttscale.settings import Settings

CELLS = [{"cell_id": "0123456789abcdef", "model": "smollm2-135m", "strategy": "beam_search", "verifier": "self", "n": 8,
          "dataset": "ladder", "seed": 0, "n_problems_done": 24}]  # fmt: skip


@pytest.fixture
def home(tmp_path) -> Path:
    (tmp_path / "home" / "models").mkdir(parents=True)
    return tmp_path / "home"


@pytest.fixture
def roots(home) -> tuple[Path, ...]:
    return allowed_roots(Settings.from_env({"TTSCALE_HOME": str(home)}))


def refusal(name: str, roots) -> str:
    got = read_model_card(name, roots)
    assert got.refusal is not None and "\n" not in got.refusal and not got.metrics and not got.cells
    return got.refusal


def test_a_matching_folder_under_the_home_shows_its_metrics_and_card(home, roots):
    name = write_learned_model(home / "learn" / "model", CELLS)
    got = read_model_card(name, roots)
    assert got.refusal is None and got.folder == str(home / "learn" / "model") and name.endswith(f"@{got.fingerprint}")
    assert got.metrics["validation"]["step_auc"] == VALIDATION["step_auc"] and got.metrics["train"]["step_auc"] == 0.8282
    assert {k: got.metrics["validation"][k] for k in ("final_auc", "step_auc_within", "brier", "ece")} == {
        "final_auc": 0.7232, "step_auc_within": 0.638, "brier": 0.0624, "ece": 0.0251,
    }  # fmt: skip
    assert "test" not in got.metrics  # a split the training did not have
    assert got.chosen == {"layer": 4, "head": "logistic", "l2": 0.1, "label": "soft"} and got.config["layer"] == 4
    assert got.cells == [CELLS[0]] and got.n_cells == 1
    assert got.card["balance"]["hard_positive_share"] == 0.139 and got.card["n_nodes_unlabelled"] == 708
    assert got.card["splits"]["validation"]["problems"] == 7 and got.card["split_fractions"] == [0.6, 0.4, 0.0]
    assert got.card["targets"] == ["loop-train"] and got.card_sha256 == "0" * 64
    # the model cache is a root too, wherever it is
    cache = home.parent / "cache"
    other = write_learned_model(cache / "m", CELLS)
    settings = Settings.from_env({"TTSCALE_HOME": str(home), "TTSCALE_MODEL_CACHE": str(cache)})
    assert read_model_card(other, allowed_roots(settings)).refusal is None
    assert is_learned(name) and not is_learned("self") and not is_learned(None)


def test_an_edited_folder_is_a_fingerprint_mismatch(home, roots):
    name = write_learned_model(home / "model", CELLS)
    metrics = json.loads((home / "model" / "metrics.json").read_text())
    (home / "model" / "metrics.json").write_text(json.dumps({**metrics, "validation": {**VALIDATION, "step_auc": 0.99}}))
    why = refusal(name, roots)
    assert why.startswith(f"fingerprint mismatch: the folder now holds {fingerprint(home / 'model')}, the cell ran with {name[-12:]}")


def test_paths_outside_the_roots_are_refused_however_they_get_there(home, roots, tmp_path):
    outside = write_learned_model(tmp_path / "elsewhere" / "model", CELLS)  # a valid, matching folder
    pin = outside.rpartition("@")[2]
    assert "is not under an allowed root" in refusal(outside, roots)
    # ../ out of the home
    assert "is not under an allowed root" in refusal(f"learned:{home}/models/../../elsewhere/model@{pin}", roots)
    # a symlinked folder inside the home that leads out of it
    os.symlink(tmp_path / "elsewhere" / "model", home / "models" / "link")
    assert "is not under an allowed root" in refusal(f"learned:{home}/models/link@{pin}", roots)
    # a folder inside whose metrics.json links to a file outside
    inside = write_learned_model(home / "models" / "inside", CELLS)
    (home / "models" / "inside" / "metrics.json").unlink()
    os.symlink(tmp_path / "elsewhere" / "model" / "metrics.json", home / "models" / "inside" / "metrics.json")
    assert refusal(inside, roots).startswith("not read: metrics.json in ") and "link out of the allowed roots" in refusal(inside, roots)
    # a root given by a symlink is the folder it leads to
    os.symlink(home, tmp_path / "home-link")
    linked = allowed_roots(Settings.from_env({"TTSCALE_HOME": str(tmp_path / "home-link")}))
    assert read_model_card(write_learned_model(home / "models" / "ok", CELLS), linked).refusal is None


@pytest.mark.parametrize(
    "name,starts",
    [
        ("learned:relative/model@0123456789ab", "not read: 'relative/model' is not an absolute path"),
        ("learned:/abs/model", "not read: the stored verifier name pins no fingerprint"),
        ("self", "not read: the stored verifier name pins no fingerprint"),
        ("learned:/abs/mo\0del@0123456789ab", "unreadable: "),
    ],
)
def test_names_that_pin_nothing_readable_are_refused(name, starts, roots):
    assert refusal(name, roots).startswith(starts)


def test_missing_looping_and_special_files_are_refused(home, roots):
    assert refusal(f"learned:{home}/models/gone@0123456789ab", roots).startswith("missing: ")
    os.symlink(home / "models" / "loop-b", home / "models" / "loop-a")
    os.symlink(home / "models" / "loop-a", home / "models" / "loop-b")
    looped = refusal(f"learned:{home}/models/loop-a@0123456789ab", roots)
    assert looped.startswith("unreadable: ") and "cannot be resolved (RuntimeError)" in looped
    name = write_learned_model(home / "models" / "fifo", CELLS)
    (home / "models" / "fifo" / "metrics.json").unlink()
    os.mkfifo(home / "models" / "fifo" / "metrics.json")  # reading it would block forever
    assert "is a FIFO" in refusal(name, roots)
    assert refusal(f"learned:{home}/models/{'x' * 5000}@0123456789ab", roots).startswith("missing: ")


def test_huge_and_garbled_json_is_refused_in_one_line(home, roots):
    name = write_learned_model(home / "models" / "huge", CELLS)
    with (home / "models" / "huge" / "metrics.json").open("r+b") as f:
        f.truncate(17 << 20)  # sparse: 17 MiB of NULs, over the 16 MiB limit
    assert "MiB allowed" in refusal(name, roots)
    for body in (b"\xff\xfe not text", b"{\"validation\": ", b"[" * 200_000 + b"]" * 200_000):
        folder = home / "models" / "garbled"
        write_learned_model(folder, CELLS)
        (folder / "metrics.json").write_bytes(body)
        pinned = f"learned:{folder}@{fingerprint(folder)}"  # the pin matches: only the content is hostile
        assert refusal(pinned, roots).startswith("unreadable: config.json or metrics.json is not JSON")


def test_wrong_types_and_long_strings_show_as_missing_values(home, roots):
    folder = home / "models" / "odd"
    write_learned_model(folder, CELLS)
    odd = {
        "chosen": 5, "validation": {"step_auc": "high", "brier": float("inf"), "ece": [1], "n_steps": 10**30},
        "train": "x", "dataset": {"card": {"cells": [1, "a", {"cell_id": "c" * 10_000, "n": {"x": 1}}], "balance": [1],
                                            "splits": {"train": 3}, "targets": "loop", "split": {"fractions": "0.5"}}},
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(odd))  # inf as `Infinity`, which Python's json reads back
    got = read_model_card(f"learned:{folder}@{fingerprint(folder)}", roots)
    assert got.refusal is None
    assert got.chosen == {"layer": None, "head": None, "l2": None, "label": None}
    assert got.metrics["validation"]["step_auc"] == "high"[:200] and got.metrics["validation"]["ece"] is None
    assert got.metrics["validation"]["brier"] is None and got.metrics["validation"]["n_steps"] == 10**30
    assert "train" not in got.metrics and got.n_cells == 1 and len(got.cells[0]["cell_id"]) == 200 and got.cells[0]["n"] is None
    assert got.card["balance"]["rows"] is None and got.card["splits"] == {} and got.card["targets"] == [] and got.card["split_fractions"] == []
