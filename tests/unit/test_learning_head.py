"""The reward head on synthetic features, its metrics worked by hand, the model folder (round
trip, fingerprint, pin) and the `name:ARG` verifier names."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from ttscale.errors import SpecError
from ttscale.learning.labels import covering_solutions
from ttscale.learning.head import fit_head
from ttscale.learning.metrics import auc, brier, ece, step_metrics
from ttscale.reward_model import (
    RewardModelConfig,
    fingerprint,
    load_model_dir,
    model_dir_error,
    pinned_name,
    short_name,
    short_names,
    split_pin,
    write_model_dir,
)
from ttscale.verifiers import check_verifier, load_verifier


def linear_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)) * rng.uniform(0.1, 30, size=20)  # unequal scales: standardisation matters
    y = (x[:, 3] / 30 - x[:, 7] / 2 + 0.3 * rng.normal(size=n) > 0).astype(float)
    return x, y


def test_logistic_head_learns_a_linear_rule_and_generalises():
    x, y = linear_data(600, 0)
    xt, yt = linear_data(400, 1)
    head = fit_head(x, y, "logistic", l2=1e-3, epochs=300, x_val=xt[:200], y_val=yt[:200])
    assert auc(head.predict(xt[200:]), yt[200:] > 0.5) > 0.95
    assert head.n_params == 21  # 20 weights and a bias
    assert np.array_equal(head.predict(xt), fit_head(x, y, "logistic", l2=1e-3, epochs=300, x_val=xt[:200], y_val=yt[:200]).predict(xt))


def test_mlp_head_learns_what_a_linear_head_cannot():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 6))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(float)  # XOR of two signs
    train, test = slice(0, 900), slice(900, None)
    linear = fit_head(x[train], y[train], "logistic", epochs=300)
    mlp = fit_head(x[train], y[train], "mlp", hidden=32, l2=1e-4, epochs=600, lr=2e-2, seed=1)
    assert auc(linear.predict(x[test]), y[test] > 0.5) < 0.65
    assert auc(mlp.predict(x[test]), y[test] > 0.5) > 0.9
    assert mlp.n_params == 6 * 32 + 32 + 32 + 1


def test_soft_labels_are_targets_the_head_calibrates_to():
    # two clusters whose steps lead to a right answer 20% and 80% of the time
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.3, (300, 3)), rng.normal(2, 0.3, (300, 3))])
    y = np.array([0.2] * 300 + [0.8] * 300)
    p = fit_head(x, y, "logistic", l2=1e-3, epochs=500, lr=5e-2).predict(x)
    assert p[:300].mean() == pytest.approx(0.2, abs=0.03) and p[300:].mean() == pytest.approx(0.8, abs=0.03)


def test_metrics_by_hand():
    # positives 0.4 and 0.8, negatives 0.1 and 0.4: pairs won 1 + 0.5 (tie) + 1 + 1 of 4
    assert auc([0.1, 0.4, 0.4, 0.8], [False, True, False, True]) == 0.875
    assert auc([0.3, 0.2], [True, True]) is None
    assert brier([0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1]) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    # bin [0.1, 0.2): mean score 0.1 vs mean target 0.5, half the rows; bin [0.9, 1]: 0.9 vs 1.0
    assert ece([0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    m = step_metrics([0.1, 0.4, 0.4, 0.8], [0.0, 0.5, 0.0, 1.0], [False, True, False, True], [True, False, True, True], ["a", "a", "b", "b"])
    assert (m["step_auc"], m["final_auc"], m["n_final"], m["n_positive"]) == (0.875, 1.0, 3, 2)
    # within each problem the positive step outscores the negative one: 1.0, where pooling
    # across problems (b's negative ties a's positive) gives 0.875
    assert m["step_auc_within"] == 1.0 and (m["final_auc_within"], m["n_problems_mixed"]) == (1.0, 1)  # final: only b has both


def test_every_row_is_read_from_one_encoded_solution_that_extends_it():
    rows = pl.DataFrame({
        "problem": ["p", "p", "p", "p", "q", "q"],
        "steps": [["a"], ["a", "b"], ["a", "b", "c"], ["a", "x"], ["a"], ["a", "b"]],
    })  # fmt: skip
    solutions, placed = covering_solutions(rows)
    assert sorted(solutions) == [("p", ("a", "b", "c")), ("p", ("a", "x")), ("q", ("a", "b"))]
    for (problem, steps), (s, k) in zip(rows.iter_rows(), placed, strict=True):
        assert solutions[s][0] == problem and solutions[s][1][: k + 1] == tuple(steps)


def model_folder(tmp_path, **changes):
    x, y = linear_data(200, 0)
    head = fit_head(x, y, "logistic", epochs=50)
    config = RewardModelConfig(backbone="smollm2-135m", layer=4, step_format="question-answer-v1", head="logistic",
                               label="soft", n_features=20, backbone_n_params=1000, head_n_params=head.n_params)  # fmt: skip
    folder = tmp_path / "model"
    return folder, write_model_dir(folder, config, head, {"validation": {"step_auc": 0.9}, **changes}, {"kind": "card"}), x


def test_model_folder_round_trip_fingerprint_and_pin(tmp_path):
    folder, fp, x = model_folder(tmp_path)
    loaded = load_model_dir(str(folder))
    assert loaded.fingerprint == fp == fingerprint(folder) and len(fp) == 12
    assert loaded.config.n_params == 1000 + 21
    assert np.allclose(loaded.head.predict(x), load_model_dir(f"{folder}@{fp}").head.predict(x))
    assert split_pin(f"{folder}@{fp}") == (str(folder), fp)
    assert split_pin("/models/v@2") == ("/models/v@2", None)  # not a fingerprint: part of the path
    assert pinned_name(str(folder)) == f"learned:{folder.absolute()}@{fp}"
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "note": "edited"}))
    assert fingerprint(folder) != fp
    assert f"has fingerprint {fingerprint(folder)}, the name pins {fp}" in model_dir_error(f"{folder}@{fp}")
    assert "does not exist" in model_dir_error(str(tmp_path / "nowhere"))
    (folder / "head.npz").unlink()
    assert "lacks head.npz" in model_dir_error(str(folder))


@pytest.mark.parametrize(
    "name,message",
    [
        ("learned", "verifier 'learned' takes an argument: write learned:PATH"),
        ("learned:", "needs its PATH after the colon"),
        ("arithmetic:x", "verifier 'arithmetic' takes no argument"),
        ("lerned:/m", "unknown verifier 'lerned:/m'"),
        ("learned:/no/such/folder", "learned model folder '/no/such/folder' does not exist"),
    ],
)
def test_verifier_names_with_an_argument_are_checked_in_one_line(name, message):
    with pytest.raises(SpecError) as err:
        check_verifier(name, "verifiers[1]")
    assert str(err.value).startswith("verifiers[1]: ") and message in str(err.value) and "\n" not in str(err.value)
    check_verifier("arithmetic")  # a plain name still passes
    with pytest.raises(SpecError, match="learned:PATH"):
        load_verifier("nope", None, None)  # the allowed names show how to name `learned`


def test_sweep_specs_pin_learned_verifiers_as_ttscale_run_does(tmp_path, monkeypatch):
    from ttscale.cli.sweep import read_sweep

    folder, fp, _ = model_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    spec_text = (
        "name: pinned\nmodels: [scripted]\nverifiers: [arithmetic, 'learned:model']\nstrategies: [{name: best_of_n}]\n"
        "budgets: [2]\ndatasets: [{name: arith, limit: 2}]\n"
    )
    (tmp_path / "sweep.yaml").write_text(spec_text)
    spec, text = read_sweep(tmp_path / "sweep.yaml")
    assert spec.verifiers == ["arithmetic", f"learned:{folder.absolute()}@{fp}"] and text == spec_text  # the file as written
    assert {c.verifier for c in spec.cells()} == {"arithmetic", f"learned:{folder.absolute()}@{fp}"}
    (tmp_path / "sweep.yaml").write_text(spec_text.replace("learned:model", "learned:gone"))
    with pytest.raises(SpecError, match=r"^verifiers\[1\]: learned model folder 'gone' does not exist"):
        read_sweep(tmp_path / "sweep.yaml")


def test_display_names_keep_the_folder_and_8_hex_of_the_fingerprint_and_never_merge_two_verifiers():
    pinned = "learned:/home/u/.ttscale/learn/model@1a2b3c4d5e6f"
    assert short_name(pinned) == "learned:model@1a2b3c4d"
    assert short_name("learned:/home/u/model/@1a2b3c4d5e6f") == "learned:model@1a2b3c4d"  # a trailing slash
    assert short_name("learned:rel/dir") == "learned:dir" and short_name("self") == "self"
    assert short_name("learned:/models/v@2") == "learned:v@2"  # `@2` is part of the folder's name
    # two folders of one name and one fingerprint's first 8 hex: both keep their full names
    twin = "learned:/elsewhere/model@1a2b3c4d0000"
    assert short_names([pinned, twin, "self", None, pinned]) == {pinned: pinned, twin: twin, "self": "self"}
    assert short_names([pinned, "learned:/x/other@1a2b3c4d5e6f"]) == {
        pinned: "learned:model@1a2b3c4d", "learned:/x/other@1a2b3c4d5e6f": "learned:other@1a2b3c4d",
    }  # fmt: skip
