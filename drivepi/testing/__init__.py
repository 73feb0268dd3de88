"""Test fixtures that ship with the library: the tiny Qwen2 checkpoint and its tokenizer corpus.

``make_tiny_llm`` writes a small Qwen2 + BPE tokenizer in the Hugging Face directory format, so tests and
the mini config load it through the same ``Qwen2LLM`` code as real Qwen2.5 weights
(``python tools/make_tiny_llm.py``). Not imported by the model: ``drivepi.models`` never depends on it.
"""
from .tiny_llm import make_tiny_llm

__all__ = ['make_tiny_llm']
