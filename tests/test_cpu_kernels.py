"`import kaiyuan_nb` pins MKL and ATen to their AVX2 kernels (same numbers on every x86 CPU) unless told otherwise."
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = ("import kaiyuan_nb, os, torch; torch.ones(8).sum(); "
         "print(torch.backends.cpu.get_cpu_capability(), os.environ['MKL_CBWR'])")

def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False

def _probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ATEN_CPU_CAPABILITY")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env={**clean, **env}, check=True)
    return out.stdout.split()

@pytest.mark.skipif(not _has_avx2(), reason="the pin only matters on x86 CPUs with AVX2 or more")
def test_import_pins_avx2_kernels():
    assert _probe() == ["AVX2", "AVX2"]

def test_an_explicit_choice_is_kept():
    assert _probe(ATEN_CPU_CAPABILITY="default", MKL_CBWR="COMPATIBLE") == ["DEFAULT", "COMPATIBLE"]
