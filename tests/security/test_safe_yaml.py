"""YAML is loaded safely everywhere: a tag that would construct a Python object is refused
with a one-line error (exit 2) and nothing it names runs; no code loads YAML unsafely."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ttscale.errors import SpecError
from ttscale.spec import parse_sweep_text, read_sweep_file
from tests.cli import ttscale

ROOT = Path(__file__).resolve().parents[2]
TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:os.system ['touch {marker}']",
    "!!python/object:subprocess.Popen {{args: ['touch', '{marker}']}}",
    "!!python/name:os.system",
    "!!python/module:os",
]


@pytest.mark.parametrize("tag", TAGS)
def test_python_tags_are_refused_in_one_line_and_never_run(tmp_path, tag):
    marker = tmp_path / "pwned"
    text = f"name: {tag.format(marker=marker)}\nmodels: [m]\n"
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    for parse in (lambda: parse_sweep_text(text, "spec.yaml"), lambda: read_sweep_file(str(path))):
        with pytest.raises(SpecError) as err:
            parse()
        message = str(err.value)
        assert "\n" not in message and "spec.yaml: not valid YAML: could not determine a constructor for the tag" in message
        assert "loaded safely" in message
    done = ttscale("sweep", "validate", str(path), env={"TTSCALE_HOME": str(tmp_path / "home")})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: {path}: not valid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/")
    assert not marker.exists()


UNSAFE = {"load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all", "Loader", "FullLoader", "UnsafeLoader", "add_constructor"}


def test_no_code_loads_yaml_unsafely():
    """Every yaml call in the platform, flows, dashboard and scripts is safe_load / safe_dump."""
    unsafe = []
    for folder in ("platform", "flows", "dashboard", "scripts", "benchmarks", "migrations"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml":
                    if node.attr in UNSAFE:
                        unsafe.append(f"{path.relative_to(ROOT)}:{node.lineno}: yaml.{node.attr}")
    assert not unsafe, unsafe


def test_the_spec_loader_is_a_safe_loader_that_refuses_duplicate_keys():
    import yaml

    from ttscale.errors import SpecError
    from ttscale.spec import _unique_keys_loader, load_yaml_text

    assert issubclass(_unique_keys_loader(), yaml.SafeLoader)
    with pytest.raises(SpecError, match="duplicate key 'budgets'"):
        load_yaml_text("budgets: [2]\nname: x\nbudgets: [4]\n")
