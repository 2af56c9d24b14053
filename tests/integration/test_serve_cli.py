"""`ttscale serve` through its real entry point on the scripted model: bad command-line input is one
line and exit 2 before any model loads; a served request answered through the `openai` client is
stored with its candidates and tree (`--store`); SIGTERM stops the server cleanly."""

from __future__ import annotations

import json
import socket

import pytest
from openai import OpenAI

from tests.cli import ttscale
from tests.orchestration import sqlite_store
from tests.serving import serving
from tests.unit.test_policy import policy_data


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy_data()), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path):
    return {"TTSCALE_HOME": str(tmp_path / "home")}


def one_error_line(got) -> str:
    assert got.returncode == 2, got.stdout + got.stderr
    assert "Traceback" not in got.stderr
    lines = [ln for ln in got.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, got.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--policy", "missing.json"], "error: --policy: "),
        (["--n", "3"], "error: --n: the policy has choices at n in [4, 8], got 3"),
        (["--temperature", "-1"], "error: --temperature: Input should be greater than or equal to 0"),
        (["--probes", "0"], "error: Invalid value for '--probes': Input should be greater than or equal to 1 (usage: ttscale serve"),
        (["--host", "no.such.host.invalid"], "error: --host: cannot resolve 'no.such.host.invalid'"),
    ],
)
def test_bad_serve_options_fail_in_one_line(policy_file, home, tmp_path, args, message):
    got = ttscale("serve", "--policy", str(policy_file), *args, env=home, cwd=str(tmp_path), timeout=120)
    assert one_error_line(got).startswith(message)


def test_a_bad_policy_file_fails_in_one_line(tmp_path, home):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert one_error_line(ttscale("serve", "--policy", str(bad), env=home)).startswith(f"error: --policy: '{bad}' is not valid JSON")
    bad.write_text(json.dumps(policy_data(version=2)), encoding="utf-8")
    assert "version: this ttscale reads policy version 1, got 2" in one_error_line(ttscale("serve", "--policy", str(bad), env=home))


def test_a_port_in_use_fails_in_one_line_before_the_model_loads(policy_file, home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        got = ttscale("serve", "--policy", str(policy_file), "--port", str(port), env=home, timeout=120)
    assert one_error_line(got) == f"error: --port: {port} is in use on 127.0.0.1; choose another port or stop what holds it"


def test_served_requests_are_answered_and_stored(policy_file, tmp_path):
    store_url = sqlite_store(tmp_path)
    env = {"TTSCALE_HOME": str(tmp_path / "home"), "TTSCALE_DATABASE_URL": store_url}
    with serving(["--policy", str(policy_file), "--store", "--probes", "2"], env, tmp_path / "serve.out", ready_s=120) as served:
        client = OpenAI(base_url=served.url, api_key="x")
        answer = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "What is 12 + 35?"}])
        info = answer.model_extra["ttscale"]
        assert info["strategy"] == "adaptive" and info["n"] == 4 and info["difficulty_bin"] in (1, 2, 3)
        assert info["stored"] == {"cell_id": info["stored"]["cell_id"], "problem_id": answer.id} and info["store_error"] is None
        assert answer.choices[0].message.content and answer.usage.completion_tokens == info["budget"]["n_generated_tokens"]
        fixed = client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "What is 2 + 3?"}], extra_body={"ttscale": {"strategy": "majority", "n": 2}}
        ).model_extra["ttscale"]
        assert fixed["chosen"] == {"name": "majority"} and fixed["stored"]["cell_id"] != info["stored"]["cell_id"]
    assert served.proc.returncode == 0, served.output()[-3000:]
    assert served.output().strip().splitlines()[-1] == "ttscale serve: stopped"

    from ttscale import store

    engine = store.make_engine(store_url)
    try:
        with engine.connect() as conn:
            cell = store.read_cell(conn, info["stored"]["cell_id"])
            candidates = store.read_candidates(conn, [cell["cell_id"]], with_text=True)
            problems = store.read_problems_of_cells(conn, [cell["cell_id"]])
            runs = store.read_problem_runs(conn, [cell["cell_id"]])
            verdicts = store.read_verdicts(conn, [cell["cell_id"]])
    finally:
        engine.dispose()
    assert (cell["strategy"], cell["dataset"], cell["n"], cell["verifier"]) == ("adaptive", "served", 4, "arithmetic")
    assert problems.select("problem_id", "text", "answer").rows() == [(answer.id, "What is 12 + 35?", "")]
    assert candidates.height == info["n_candidates"] and candidates["correct"].is_null().all()
    assert answer.choices[0].message.content in candidates["text"].to_list()
    run = runs.row(0, named=True)
    assert (run["n_nodes"], run["n_generated_tokens"], run["policy_flops"]) == (
        info["budget"]["n_generations"], info["budget"]["n_generated_tokens"], info["budget"]["policy_flops"])  # fmt: skip
    assert verdicts.height == 0  # no gold answer: nothing judged
