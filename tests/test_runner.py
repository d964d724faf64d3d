"Bad input and failure handling of the papermill runner (`kaiyuan-report`)."
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kaiyuan_nb.core import ChapterFailed, ConfigError, list_chapters, read_json, run_chapters

from conftest import ROOT

PARAMS = 'scale = "smoke"\nseed = 0\nrun_dir = None'

def write_nb(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, path)

WRITE_RESULT = """
from kaiyuan_nb.core import ChapterRun
ChapterRun("{name}", scale, seed, run_dir).finish({{"value": {value}}}, [])
"""

@pytest.fixture
def toy_nbs(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_nb(nbs / "00_ok.ipynb", WRITE_RESULT.format(name="00_ok", value=1))
    write_nb(nbs / "01_boom.ipynb", "x = 1\nraise ValueError('the data file is bad')")
    write_nb(nbs / "02_after.ipynb", WRITE_RESULT.format(name="02_after", value=2))
    return nbs

def test_lists_repo_chapters():
    chapters = list_chapters(ROOT / "nbs")
    assert chapters[0] == "00_core" and chapters[-1] == "index"

def test_unknown_scale_cli(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / "kaiyuan-report"), "--scale", "huge"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "unknown scale 'huge'" in r.stderr and "['gpu', 'gpu-dryrun', 'report', 'smoke']" in r.stderr

def test_unknown_chapter_cli():
    r = subprocess.run([str(Path(sys.executable).parent / "kaiyuan-report"), "--only", "05_stab"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "unknown chapter '05_stab'" in r.stderr and "00_core" in r.stderr

def test_missing_nbs_dir(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        run_chapters("smoke", nbs_dir=tmp_path / "nope", run_dir=tmp_path)

def test_failing_chapter_stops_and_keeps_results(toy_nbs, tmp_path, results_tmp):
    results_tmp.mkdir()
    (results_tmp / "02_after.json").write_text('{"kept": true}')
    before_src = (toy_nbs / "01_boom.ipynb").read_bytes()
    with pytest.raises(ChapterFailed) as e:
        run_chapters("smoke", run_dir=tmp_path / "run", nbs_dir=toy_nbs, in_place=True)
    msg = str(e.value)
    assert "chapter 01_boom failed" in msg and "ValueError" in msg and "the data file is bad" in msg
    assert read_json(results_tmp / "00_ok.json")["metrics"] == {"value": 1}
    assert json.loads((results_tmp / "02_after.json").read_text()) == {"kept": True}  # never reached
    assert (toy_nbs / "01_boom.ipynb").read_bytes() == before_src  # failed notebook not replaced
    assert not list(results_tmp.glob("*.tmp")) and not list(results_tmp.glob(".*"))

def test_failing_chapter_cli_exit_code(toy_nbs, tmp_path, results_tmp):
    r = subprocess.run([str(Path(sys.executable).parent / "kaiyuan-report"), "--nbs-dir", str(toy_nbs),
                        "--run-dir", str(tmp_path / "run"), "--from", "01_boom"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    assert "chapter 01_boom failed" in r.stderr and "the data file is bad" in r.stderr

def test_in_place_replaces_only_after_success(toy_nbs, tmp_path, results_tmp):
    run_chapters("smoke", run_dir=tmp_path / "run", nbs_dir=toy_nbs, only=["00_ok"], in_place=True)
    nb = nbformat.read(toy_nbs / "00_ok.ipynb", as_version=4)
    assert "papermill" in nb.metadata  # the executed notebook replaced the source

def test_missing_prerequisite_chapter_is_an_error(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / "kaiyuan-report"), "--only", "09_sft",
                        "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "09_sft needs the artifacts of 04_evaluation" in r.stderr

def test_stale_lists_chapters_whose_code_changed(toy_nbs, tmp_path, results_tmp):
    cli = [str(Path(sys.executable).parent / "kaiyuan-report"), "--nbs-dir", str(toy_nbs),
           "--run-dir", str(tmp_path / "run")]
    run_chapters("smoke", run_dir=tmp_path / "run", nbs_dir=toy_nbs, only=["00_ok"])
    record = read_json(results_tmp / "00_ok.json")
    assert record["compute_s"] == record["render_s"] >= 0 and record["code_hash"] and record["computed_at_commit"]
    env = {**os.environ, "KAIYUAN_RESULTS_DIR": str(results_tmp)}
    stale = subprocess.run(cli + ["--stale"], capture_output=True, text=True, cwd=toy_nbs, env=env)
    assert stale.returncode == 0 and "00_ok" not in stale.stdout.split()  # fresh; the unrun chapters are listed
    assert "01_boom" in stale.stdout.split()
    write_nb(toy_nbs / "00_ok.ipynb", WRITE_RESULT.format(name="00_ok", value=3))  # new code, same results file
    stale = subprocess.run(cli + ["--stale"], capture_output=True, text=True, cwd=toy_nbs, env=env)
    assert "00_ok" in stale.stdout.split()
