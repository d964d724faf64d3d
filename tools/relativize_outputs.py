"""Replace this checkout's absolute paths in the saved outputs (and prose) of the notebooks by
project-relative ones, so committed notebooks and the rendered site name no machine paths.

Code cells' sources are left alone (they define the chapters' code hashes). Usage:
    python tools/relativize_outputs.py [NOTEBOOK ...]   (default: nbs/*.ipynb)
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPLACEMENTS = ((f"{ROOT}/nbs/", ""), (f"{ROOT}/", ""), (str(ROOT), "."), (f"{ROOT.parent}/shared/", "../shared/"))


def relativize(value):
    "The same JSON value with every string's absolute checkout paths made relative."
    if isinstance(value, str):
        for old, new in REPLACEMENTS:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [relativize(v) for v in value]
    if isinstance(value, dict):
        return {k: relativize(v) for k, v in value.items()}
    return value


def relativize_notebook(path: Path) -> bool:
    "Rewrite `path` in place when an output or a markdown cell names an absolute checkout path."
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = relativize(cell["source"])
        if "outputs" in cell:
            cell["outputs"] = relativize(cell["outputs"])
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if text == path.read_text(encoding="utf-8"):
        return False
    tmp = path.with_suffix(".ipynb.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "nbs").glob("*.ipynb"))
    changed = [p.name for p in paths if relativize_notebook(p)]
    print(f"relativize_outputs: {len(changed)} notebook(s) rewritten {changed}")
