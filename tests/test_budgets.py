"The budgets registry (`kaiyuan_nb.budgets`): complete, every table covers every scale, and BUDGETS.md is current."
import pytest

from conftest import ROOT
from kaiyuan_nb.budgets import REGISTRIES, budgets_main, budgets_markdown, discover_registries, registry, scale_budgets
from kaiyuan_nb.core import SCALES, ConfigError

REGISTERED = sorted(t for tables in REGISTRIES.values() for t in tables)


def test_every_budget_table_is_registered():
    "A module-level `*BUDGETS`/`EXPERIMENTS`/`SCALES` dict of dataclasses missing from REGISTRIES fails here."
    assert discover_registries() == REGISTERED


def test_discovery_finds_a_new_table(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("from dataclasses import dataclass\n@dataclass\nclass B:\n    n: int\n"
                                "NEW_BUDGETS = {'smoke': B(1)}\nOTHER = {'smoke': B(2)}\nPLAIN_BUDGETS = {'smoke': 3}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert discover_registries("fakepkg") == [("mod", "NEW_BUDGETS")]


@pytest.mark.parametrize("table", REGISTERED, ids=lambda t: ".".join(t))
def test_every_table_has_smoke_report_and_gpu(table):
    "No table lacks one of the three today (gpu-dryrun borrows smoke's: see the next test)."
    missing = {"smoke", "report", "gpu"} - set(registry(*table))
    assert not missing, f"{'.'.join(table)} has no budget for {sorted(missing)}"


@pytest.mark.parametrize("scale", sorted(SCALES))
def test_every_scale_resolves_for_every_chapter(scale):
    "Aliases (gpu-dryrun) resolve through pick_budget to the scale whose budgets they borrow."
    budgets = scale_budgets(scale)
    assert list(budgets) == list(REGISTRIES)
    assert all(len(b) == len(REGISTRIES[c]) for c, b in budgets.items())


def test_budgets_md_is_current():
    "Regenerate with `kaiyuan-budgets --write BUDGETS.md` (or `python -m kaiyuan_nb.budgets --write BUDGETS.md`)."
    assert (ROOT / "BUDGETS.md").read_text(encoding="utf-8") == budgets_markdown()


def test_bad_scale_names_the_scale(capsys):
    with pytest.raises(ConfigError, match="unknown scale 'huge'"):
        scale_budgets("huge")
    assert budgets_main(["--scale", "huge"]) == 2
    assert "unknown scale 'huge'" in capsys.readouterr().err
