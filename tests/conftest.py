import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results_tmp(tmp_path, monkeypatch):
    "Send results of the code under test to a temp dir, never to the committed results/."
    d = tmp_path / "results"
    monkeypatch.setenv("KAIYUAN_RESULTS_DIR", str(d))
    return d


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
