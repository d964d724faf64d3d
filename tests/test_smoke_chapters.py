"Papermill smoke run of every chapter at scale=smoke, in order, sharing one run dir as `make smoke` does."
import time

import pytest

from kaiyuan_nb.core import list_chapters, read_json, run_chapter
from kaiyuan_nb.verdicts import validate_claim

from conftest import ROOT

CHAPTERS = list_chapters(ROOT / "nbs")


@pytest.fixture(scope="module")
def smoke_run_dir(tmp_path_factory):
    "One run dir for all chapters, so later chapters reuse what earlier ones prepared (data, tokenizer)."
    return tmp_path_factory.mktemp("smoke_run")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_smoke(chapter, smoke_run_dir, results_tmp):
    start = time.perf_counter()
    run_chapter(chapter, "smoke", 0, smoke_run_dir, ROOT / "nbs", in_place=False)
    print(f"{chapter}: {time.perf_counter() - start:.1f} s at scale=smoke")
    if chapter == "index":
        return
    record = read_json(results_tmp / f"{chapter}.json")
    assert record["chapter"] == chapter and record["scale"] == "smoke"
    assert all(isinstance(v, (int, float)) for v in record["metrics"].values())
    assert {"computed_at_commit", "code_hash", "compute_s", "render_s", "machine", "tokens_trained",
            "train_flops"} <= set(record)
    for c in record["claims"]:
        assert validate_claim(c) == c  # every field of the schema, a status the statistics layer allows
        assert c["kind"] == "check" or c["source"] != "ours"
