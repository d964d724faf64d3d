"The rendered docs site, opened in headless Chromium: every chapter page, image and internal link."
import shutil

import pytest

from kaiyuan_nb.site import build_site, check_site

from conftest import ROOT, in_ci


def test_site_renders_and_every_page_works(tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        if in_ci():
            pytest.fail("Chromium is missing in CI: .ci/run should have installed it (tools/system_deps.sh)")
        pytest.skip("no Chromium here: run `bash tools/system_deps.sh`")
    site = build_site(ROOT)
    assert (site / "nbs" / "index.html").exists()
    shot = tmp_path / "index.png"
    assert check_site(site, ROOT / "nbs", screenshot=shot) == []
    assert shot.stat().st_size > 10_000
