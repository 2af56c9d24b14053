"""Bad CLI input: one line naming the option and the allowed values, exit 2, nothing stored."""

from __future__ import annotations

import json

import pytest

from tests.cli import ttscale


@pytest.fixture
def home(tmp_path):
    return {"TTSCALE_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--strategy", "beamsearch"], "--strategy: unknown strategy 'beamsearch' (did you mean 'beam_search'?); allowed: adaptive, beam_search, best_of_n, dvts, majority, particle_filtering, rollout, self_refine"),
        (["--strategy", "dvts", "--n", "6", "--verifier", "arithmetic"], "--n: must be a multiple of dvts.beam_width=4, got 6"),
        (["--strategy", "beam_search", "--n", "4"], "--verifier: strategy beam_search needs a verifier"),
        (["--verifier", "arithmetc"], "verifier: unknown verifier 'arithmetc' (did you mean 'arithmetic'?)"),
        (["--dataset", "nosuch", "--verifier", "arithmetic"], "dataset.name: unknown dataset 'nosuch'"),
        (["--n", "0", "--verifier", "arithmetic"], "--n: Input should be greater than or equal to 1, got 0"),
        (["--levels", "1,x", "--verifier", "arithmetic"], "--levels: must be comma-separated integers, got '1,x'"),
        (["--temperature", "-1", "--verifier", "arithmetic"], "--temperature: Input should be greater than or equal to 0"),
    ],
)
def test_bad_run_options_fail_in_one_line(home, args, message):
    got = ttscale("run", "--limit", "2", *args, env=home)
    assert got.returncode == 2, got.stderr
    lines = [ln for ln in got.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, got.stderr
    assert message in lines[0]
    assert "Traceback" not in got.stderr


def test_bad_dataset_rows_fail_before_any_model_loads(home, tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps({"question": "1+1?"}) + "\n")
    got = ttscale("run", "--dataset", str(f), "--verifier", "arithmetic", env=home)
    assert got.returncode == 2
    assert "rows.jsonl:1: missing field `answer` (has: question)" in got.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    got = ttscale("run", "--dataset", str(empty), "--verifier", "arithmetic", env=home)
    assert got.returncode == 2 and "no problems" in got.stderr


def test_unknown_ls_kind(home):
    got = ttscale("ls", "widgets", env=home)
    assert got.returncode == 2
    assert got.stderr.strip() == "error: kind: unknown 'widgets'; allowed: strategies, verifiers, datasets, models, aggregations"
