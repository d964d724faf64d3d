__version__ = "0.1.0"

# `import kaiyuan_nb` registers the "kaiyuan" model type with transformers' AutoConfig and
# AutoModelForCausalLM, so an exported model loads with AutoModelForCausalLM.from_pretrained(path).
from . import model as model  # noqa: E402
