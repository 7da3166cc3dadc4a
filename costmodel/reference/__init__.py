"""PyTorch reference model: GPT with no / dynamic / static KV cache, and speculative decoding.

Optional extra: importing this package requires ``torch``.
"""

from costmodel.reference.gpt import GPT, GPTConfig
from costmodel.reference.speculative import generate_speculative

__all__ = ["GPT", "GPTConfig", "generate_speculative"]
