__version__ = "0.1.0"

# Same numbers on every x86 CPU: MKL and ATen run AVX-512 kernels where a CPU has them, and those sum in a
# different order than the AVX2 ones, so a Zen 4 and a Zen 3 machine train different models from one seed.
# Both are pinned to their AVX2 code paths (the project's reference machine) before torch computes anything;
# set MKL_CBWR / ATEN_CPU_CAPABILITY yourself to choose otherwise (e.g. "AUTO" / "avx512" for speed).
import os as _os

_os.environ.setdefault("MKL_CBWR", "AVX2")
_os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

# `import kaiyuan_nb` registers the "kaiyuan" model type with transformers' AutoConfig and
# AutoModelForCausalLM, so an exported model loads with AutoModelForCausalLM.from_pretrained(path).
from . import model as model  # noqa: E402
