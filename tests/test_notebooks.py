"Committed notebooks are clean: no machine paths, no warnings in outputs, no papermill parameters that point outside the project."
import json
import re

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users|opt|usr|var|mnt)/[\w.-]+")


def _texts(nb: dict):
    yield "-", "notebook metadata", json.dumps(nb.get("metadata", {}))  # papermill records input/output paths here
    for i, cell in enumerate(nb["cells"]):
        yield i, "cell metadata", json.dumps(cell.get("metadata", {}))
        yield i, "source", "".join(cell["source"])
        for out in cell.get("outputs", []):
            text = out.get("text") or "".join(out.get("data", {}).get("text/plain", []))
            yield i, f"output ({out.get('name', out['output_type'])})", "".join(text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_machine_paths(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = [f"cell {i} {where}: {m.group(0)}" for i, where, text in _texts(nb) for m in MACHINE_PATH.finditer(text)]
    assert not found, f"{path.name} holds absolute machine paths: {found[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_warnings_in_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = [f"cell {i}: {text[:120]!r}" for i, where, text in _texts(nb)
             if where == "output (stderr)" and re.search(r"\w*Warning\b", text)]
    assert not found, f"{path.name} has warnings in its committed outputs: {found[:3]}"


def test_every_chapter_is_in_the_site_sidebar():
    "The sidebar lists chapters by name (a glob there nests them under a stray 'Nbs' heading): keep it complete."
    quarto = (ROOT / "_quarto.yml").read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if re.match(r"\d\d_", p.name) and f"- nbs/{p.name}" not in quarto]
    assert not missing, f"_quarto.yml's sidebar misses {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_run_all_uses_the_default_parameters(path):
    "A saved report run's injected parameters are commented out, so Run All in JupyterLab stays at the defaults."
    nb = json.loads(path.read_text(encoding="utf-8"))
    live = [i for i, c in enumerate(nb["cells"]) if "injected-parameters" in c.get("metadata", {}).get("tags", [])
            and any(line.strip() and not line.lstrip().startswith("#") for line in c["source"])]
    assert not live, f"{path.name}: injected-parameters cell(s) {live} would override the defaults on Run All"


def test_every_committed_figure_is_drawn_by_its_chapter():
    "A figure under results/ that its chapter no longer saves is a leftover of an older design: it must go."
    saved = re.compile(r"save_figure\([^,]+,\s*(f?)[\"']([\w{}]+)[\"']")
    orphans = []
    for png in sorted((ROOT / "results").glob("[0-9][0-9]_*.png")):
        chapter = next((nb for nb in NOTEBOOKS if png.stem.startswith(nb.stem + "_")), None)
        source = "".join("".join(c["source"]) for c in json.loads(chapter.read_text(encoding="utf-8"))["cells"]) if chapter else ""
        names = [re.escape(n) if not f else re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(n)) for f, n in saved.findall(source)]
        if not any(re.fullmatch(f"{chapter.stem}_{n}", png.stem) for n in names):
            orphans.append(png.name)
    assert not orphans, f"figures no chapter draws any more: {orphans}"
