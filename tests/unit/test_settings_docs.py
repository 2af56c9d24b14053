"""Every environment variable the code reads is documented, and defaults resolve under TTSCALE_HOME."""

from __future__ import annotations

import re
from pathlib import Path

from ttscale.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented():
    doc = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", doc, re.MULTILINE))
    assert documented == set(ENV_VARS)


def test_code_reads_no_undocumented_ttscale_variable():
    read = set()
    paths = [p for top in ("platform/ttscale", "flows", "dashboard") for p in (ROOT / top).rglob("*.py")]
    for path in paths:
        read |= set(re.findall(r"""["'](TTSCALE_[A-Z_]+)["']""", path.read_text()))
    assert read <= set(ENV_VARS), read - set(ENV_VARS)


def test_defaults_live_under_home(tmp_path):
    s = Settings.from_env({"TTSCALE_HOME": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'ttscale.db'}"
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert s.model_cache == tmp_path / "models"
    assert s.prefect_api_url is None and s.vllm_server_url is None


def test_kv_block_size_comes_from_the_environment_and_is_checked():
    import pytest

    from ttscale.errors import SpecError
    from ttscale.settings import Settings

    assert Settings.from_env({}).kv_block_size is None
    assert Settings.from_env({"TTSCALE_KV_BLOCK_SIZE": "64"}).kv_block_size == 64
    for bad in ("0", "-32", "32.5", "big"):
        with pytest.raises(SpecError, match="TTSCALE_KV_BLOCK_SIZE"):
            Settings.from_env({"TTSCALE_KV_BLOCK_SIZE": bad})
