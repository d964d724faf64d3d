"Papermill smoke run of every chapter at scale=smoke: each must run to the end and write its results."
import time

import pytest

from kaiyuan_nb.core import list_chapters, read_json, run_chapter

from conftest import ROOT

CHAPTERS = list_chapters(ROOT / "nbs")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_smoke(chapter, tmp_path, results_tmp):
    start = time.perf_counter()
    run_chapter(chapter, "smoke", 0, tmp_path / "run", ROOT / "nbs", in_place=False)
    print(f"{chapter}: {time.perf_counter() - start:.1f} s at scale=smoke")
    if chapter == "index":
        return
    record = read_json(results_tmp / f"{chapter}.json")
    assert record["chapter"] == chapter and record["scale"] == "smoke"
    assert all(isinstance(v, (int, float)) for v in record["metrics"].values())
    for c in record["claims"]:
        assert c["status"] in ("reproduced", "not reproduced", "not testable at this scale") and c["evidence"]
