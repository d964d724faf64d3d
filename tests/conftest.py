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


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (restored after): tiny models gain nothing from 2 threads, and on a busy
    shared CPU 2 OpenMP threads are many times slower. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
