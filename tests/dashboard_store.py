"""Stores the dashboard tests read, seeded once per test process.

- `sweep store`: a real small sweep, `ttscale sweep run` with the scripted model (Best-of-N
  and beam search against the scripted verifier, two budgets, on `PROBLEMS` as a JSONL
  dataset) through the real entry point, plus one cell run outside sweeps by
  `runner.run_shard` (what a caller outside any sweep, such as the serving endpoint, does),
  into a temporary SQLite store.
- `models store`: two scripted policies of different size and skill (the registered
  `scripted` model is one size only), Best-of-N searched by `runner.search_shard` and stored
  with `store.write_shard`, so the small-vs-large comparison has data.
- `learned store`: Best-of-N on one policy's samples under three verifiers — `scripted`, and
  two `learned:PATH@FINGERPRINT` model folders under its TTSCALE_HOME (`tests/learned_models.py`),
  one trained from the `scripted` cell and matching, one edited after its cell ran (a fingerprint
  mismatch, in a cell outside sweeps) — so the audit page shows a data card and a refusal, and
  the verifiers can be compared at equal budgets.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.cli import ttscale

SWEEP_SPEC = """\
name: dashboard-test
models: [scripted]
verifiers: [scripted]
strategies:
  - {{name: best_of_n}}
  - {{name: beam_search, beam_width: 2, n_iterations: 4}}
budgets: [2, 4]
datasets:
  - {{name: jsonl, path: {path}}}
seeds: [0]
shard_size: 4
"""
PROBLEMS = [
    {"id": f"p{i}", "problem": f"Ada has {a} apples and finds {b} more. How many apples does she have?", "answer": str(a + b), "level": 1 + i % 4}
    for i, (a, b) in enumerate([(1, 1), (2, 1), (1, 3), (4, 1), (3, 3), (2, 2), (1, 2), (3, 2)])
]
"""Eight problems whose answers (2..6) are the ones the scripted policy writes most often (it
answers a + b with a in 0..6, b in 0..2, hashed from the prompt), so accuracies are neither 0
nor 1 and differ between cells and selection methods."""


def loose_cell(dataset: Path):
    """The cell run outside sweeps: majority at n=4 on the first 6 problems."""
    from ttscale.spec import CellSpec

    return CellSpec.model_validate(
        {"model": "scripted", "strategy": {"name": "majority"}, "n": 4, "dataset": {"name": "jsonl", "path": str(dataset), "limit": 6}}
    )


@dataclass(frozen=True)
class Seeded:
    home: Path
    url: str
    env: dict[str, str]
    spec_text: str = ""
    dataset: str = ""
    learned: str = ""
    """The learned store's matching `learned:PATH@FINGERPRINT` verifier."""


_CACHE: dict[str, Seeded] = {}


def service_env(home: Path) -> dict[str, str]:
    """Everything the CLI writes goes under `home` (store, MLflow, Prefect)."""
    return {
        "TTSCALE_HOME": str(home),
        "TTSCALE_DATABASE_URL": f"sqlite:///{home / 'ttscale.db'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "prefect" / "storage"),
        "PREFECT_MEMO_STORE_PATH": str(home / "prefect" / "memo_store.toml"),
        "PREFECT_LOGGING_SETTINGS_PATH": str(home / "prefect" / "logging.yml"),
    }


def _check(done, what: str) -> None:
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def sweep_store(root: Path) -> Seeded:
    """The sweep + loose-cell store (built once per process)."""
    if "sweep" in _CACHE:
        return _CACHE["sweep"]
    home = root / "sweep-home"
    home.mkdir(parents=True)
    env = service_env(home)
    _check(ttscale("db", "upgrade", env=env), "ttscale db upgrade")
    dataset = home / "problems.jsonl"
    dataset.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS), encoding="utf-8")
    spec_text = SWEEP_SPEC.format(path=dataset)
    spec = home / "spec.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    _check(ttscale("sweep", "run", str(spec), env=env, cwd=str(home), timeout=300), "ttscale sweep run")
    from ttscale import runner, store
    from ttscale.data import load_problems
    from ttscale.settings import Settings

    cell = loose_cell(dataset)
    with store.opened(env["TTSCALE_DATABASE_URL"]) as engine:
        runner.run_shard(engine, cell, [p.id for p in load_problems(cell.dataset)], Settings.from_env(env))
    _CACHE["sweep"] = Seeded(home, env["TTSCALE_DATABASE_URL"], env, spec_text, str(dataset))
    return _CACHE["sweep"]


MODELS = {"scripted-1b": (0.75, 1_000_000_000), "scripted-8b": (0.95, 8_000_000_000)}
"""name: (skill, parameters) of the two scripted policies of the models store."""


def _respond(problems: dict[str, object], skill: float):
    """A policy that solves a problem with probability skill / level (level 1..5), decided by
    a hash of (prompt, sample index): deterministic, harder problems solved less often."""

    def respond(prompt: str, k: int) -> str:
        problem = max(problems.values(), key=lambda p: prompt.rfind(p.text))
        h = int.from_bytes(hashlib.sha256(f"{prompt}\x1f{k}".encode()).digest()[:8], "big")
        right = (h % 1000) / 1000 < skill / (problem.level or 3)
        answer = problem.answer if right else str(int(problem.answer) + 1 + h % 3)
        return f"## Step 1: Work\nwe look at it\n\n## Step 2: Sum\nso it is {answer}\n\nTherefore, the final answer is: $\\boxed{{{answer}}}$."

    return respond


def _store_searched_cell(engine, cell, problems, policy, verifier, *, sweep_id: str | None, verifier_params: int | None = None) -> None:
    """Register `cell`, search all `problems` with the scripted `policy` and `verifier` in one
    shard, and store it done — what a worker does, without the flow around it."""
    from ttscale import store
    from ttscale.models import ModelInfo
    from ttscale.planning import PreparedCell
    from ttscale.prompting import PromptBuilder
    from ttscale.runner import CellRuntime, search_shard

    with store.transaction(engine) as conn:
        store.register_cell(conn, cell, sweep_id=sweep_id, n_problems=len(problems), policy_params=policy.n_params,
                            verifier_params=verifier.n_params if verifier_params is None else verifier_params)  # fmt: skip
        store.set_cell_status(conn, cell.cell_id, "running")
    prepared = PreparedCell(cell, problems, ModelInfo(name=cell.model, source="path", n_params=policy.n_params))
    runtime = CellRuntime(prepared, policy, verifier, PromptBuilder(chat=policy.chat_prompt, format="chat"))
    outcome = search_shard(cell, problems, runtime)
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
        store.set_cell_status(conn, cell.cell_id, "done")


def models_store(root: Path) -> Seeded:
    """Two models × Best-of-N (N=8) on 16 arith problems (built once per process)."""
    if "models" in _CACHE:
        return _CACHE["models"]
    from ttscale import store
    from ttscale.backends.scripted import ScriptedPolicy
    from ttscale.data import load_problems
    from ttscale.spec import SweepSpec
    from ttscale.verifiers.scripted import ScriptedVerifier

    home = root / "models-home"
    home.mkdir(parents=True)
    env = service_env(home)
    url = env["TTSCALE_DATABASE_URL"]
    engine = store.make_engine(url, create_dirs=True)
    store.upgrade(engine)
    spec = SweepSpec.model_validate(
        {
            "name": "models-test",
            "models": list(MODELS),
            "verifiers": ["scripted"],
            "strategies": [{"name": "best_of_n"}],
            "budgets": [8],
            "datasets": [{"name": "arith", "limit": 16}],
        }
    )
    problems = load_problems(spec.datasets[0])
    by_id = {p.id: p for p in problems}
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, spec, "name: models-test\n", "tests")
    for cell in spec.cells():
        skill, params = MODELS[cell.model]
        policy = ScriptedPolicy(_respond(by_id, skill), model=cell.model, n_params=params)
        _store_searched_cell(engine, cell, problems, policy, ScriptedVerifier(), sweep_id=sweep_id)
    with store.transaction(engine) as conn:
        store.set_sweep_status(conn, sweep_id, "done")
    engine.dispose()
    _CACHE["models"] = Seeded(home, url, env)
    return _CACHE["models"]


LEARNED_SWEEP = "learned-test"


def _informed(by_text: dict[str, object], salt: str, weight: float):
    """Step scores that lean towards a step holding the right answer by `weight` (0: hashed noise)."""
    from ttscale.verifiers.scripted import hashed_score

    def score(problem: str, steps) -> float:
        noise = hashed_score(salt + problem, steps)
        right = f"{{{by_text[problem].answer}}}" in steps[-1] or f" {by_text[problem].answer}\n" in steps[-1] + "\n"
        return (1 - weight) * noise + weight * float(right)

    return score


def learned_store(root: Path) -> Seeded:
    """Best-of-N (N=4) on 16 arith problems under `scripted` and two learned verifiers (built
    once per process)."""
    if "learned" in _CACHE:
        return _CACHE["learned"]
    from tests.learned_models import VALIDATION, write_learned_model
    from ttscale import store
    from ttscale.backends.scripted import ScriptedPolicy
    from ttscale.data import load_problems
    from ttscale.spec import CellSpec, DatasetSpec, SweepSpec
    from ttscale.verifiers.scripted import ScriptedVerifier

    home = root / "learned-home"
    home.mkdir(parents=True)
    env = service_env(home)
    url = env["TTSCALE_DATABASE_URL"]
    engine = store.make_engine(url, create_dirs=True)
    store.upgrade(engine)
    dataset = {"name": "arith", "limit": 16}
    problems = load_problems(DatasetSpec.model_validate(dataset))
    by_id = {p.id: p for p in problems}
    by_text = {p.text: p for p in problems}
    base = {"model": "scripted-1b", "strategy": {"name": "best_of_n"}, "n": 4, "dataset": dataset}
    trained_from = CellSpec.model_validate({**base, "verifier": "scripted"})
    training = [{"cell_id": trained_from.cell_id, "model": "scripted-1b", "strategy": "best_of_n", "verifier": "scripted", "n": 4,
                 "dataset": "arith", "seed": 0, "n_problems_done": 16},
                {"cell_id": "feedfacefeedface", "model": "scripted-1b", "strategy": "beam_search", "verifier": "self", "n": 8,
                 "dataset": "ladder", "seed": 0, "n_problems_done": 24}]  # fmt: skip
    matching = write_learned_model(home / "models" / "loop", training)
    edited = write_learned_model(home / "models" / "edited", training, validation={**VALIDATION, "step_auc": 0.65})
    cells = [
        (trained_from, _informed(by_text, "s", 0.0)),
        (CellSpec.model_validate({**base, "verifier": matching}), _informed(by_text, "l", 0.6)),
        (CellSpec.model_validate({**base, "verifier": edited}), _informed(by_text, "e", 0.3)),
    ]
    with store.transaction(engine) as conn:
        sweep = SweepSpec.model_validate({"name": LEARNED_SWEEP, "models": ["scripted-1b"], "verifiers": ["scripted", matching],
                                          "strategies": [{"name": "best_of_n"}], "budgets": [4], "datasets": [dataset]})  # fmt: skip
        sweep_id = store.register_sweep(conn, sweep, f"name: {LEARNED_SWEEP}\n", "tests")
    for i, (cell, score) in enumerate(cells):
        policy = ScriptedPolicy(_respond(by_id, 0.75), model=cell.model, n_params=1_000_000_000)
        _store_searched_cell(engine, cell, problems, policy, ScriptedVerifier(score), sweep_id=sweep_id if i < 2 else None, verifier_params=1_000_000)
    with store.transaction(engine) as conn:
        store.set_sweep_status(conn, sweep_id, "done")
    engine.dispose()
    metrics = home / "models" / "edited" / "metrics.json"
    metrics.write_text(metrics.read_text().replace('"step_auc": 0.65', '"step_auc": 0.9'))  # retrained since its cell ran
    _CACHE["learned"] = Seeded(home, url, env, learned=matching)
    return _CACHE["learned"]


def empty_store(root: Path) -> Seeded:
    """A migrated store with nothing in it."""
    if "empty" in _CACHE:
        return _CACHE["empty"]
    home = root / "empty-home"
    home.mkdir(parents=True)
    env = service_env(home)
    _check(ttscale("db", "upgrade", env=env), "ttscale db upgrade")
    _CACHE["empty"] = Seeded(home, env["TTSCALE_DATABASE_URL"], env)
    return _CACHE["empty"]


def dashboard_env(seeded: Seeded) -> dict[str, str]:
    return {**os.environ, **seeded.env, "TTSCALE_DASHBOARD_DATABASE_URL": seeded.url}
