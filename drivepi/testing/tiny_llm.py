"""A tiny Qwen2 checkpoint with a BPE tokenizer trained on driving QA text.

The checkpoint is written in the Hugging Face directory format (``config.json``,
``model.safetensors``, ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json``),
so tests and the mini config load it through the same ``from_pretrained`` code as real
Qwen2.5 weights. The tokenizer uses Qwen2's normaliser, pre-tokeniser regex and byte-level
decoder; only its vocabulary is small and trained here.
"""
import json
from pathlib import Path
from typing import Iterable, Optional

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from drivepi.fileio import atomic_directory
from drivepi.models.llm.special_tokens import DRIVEPI_SPECIAL_TOKENS, ENDOFTEXT, IM_END, QWEN_SPECIAL_TOKENS

from .driving_corpus import driving_qa_corpus


def train_driving_tokenizer(texts: Iterable[str], vocab_size: int) -> Qwen2Tokenizer:
    """Train a byte-level BPE on ``texts`` with Qwen2's pre-tokeniser and wrap it as Qwen2Tokenizer.

    Args:
        texts: training sentences.
        vocab_size: target vocabulary size including the 256 byte symbols and the special tokens.

    Returns:
        A Qwen2 tokenizer whose special tokens (Qwen's chat tokens and DrivePI's placeholders)
        are single ids.
    """
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=list(QWEN_SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer=trainer)
    trained = json.loads(bpe.to_str())['model']
    tokenizer = Qwen2Tokenizer(vocab=trained['vocab'], merges=[tuple(m) for m in trained['merges']],
                               unk_token=ENDOFTEXT, eos_token=IM_END, pad_token=ENDOFTEXT)
    tokenizer.add_special_tokens(
        {'additional_special_tokens': [t for t in QWEN_SPECIAL_TOKENS + DRIVEPI_SPECIAL_TOKENS
                                       if t != ENDOFTEXT]})
    return tokenizer


def tiny_qwen2_config(vocab_size: int, hidden_size: int, num_layers: int, num_heads: int,
                      num_kv_heads: int, bos_id: int, eos_id: int, pad_id: int) -> Qwen2Config:
    """A Qwen2 config with Qwen2.5's conventions (tied embeddings, RoPE theta 1e6) at tiny size."""
    return Qwen2Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=True,
        rope_parameters=dict(rope_type='default', rope_theta=1_000_000.0),
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)


def make_tiny_llm(out_dir, seed: int = 0, texts: Optional[Iterable[str]] = None,
                  vocab_size: int = 1024, hidden_size: int = 64, num_layers: int = 2,
                  num_heads: int = 4, num_kv_heads: int = 2, overwrite: bool = False) -> Path:
    """Write a tiny, randomly initialised Qwen2 checkpoint and its trained tokenizer.

    Args:
        out_dir: target directory; must be absent or empty unless ``overwrite``.
        seed: seeds the weights and the built-in corpus.
        texts: tokenizer training text added to the built-in driving-QA corpus (e.g. generated QA).
        vocab_size: BPE vocabulary size (the model's embedding table is padded up to a multiple of 64,
            as Qwen2.5's is).
        hidden_size, num_layers, num_heads, num_kv_heads: model size (``hidden_size`` divisible by
            ``num_heads``, ``num_heads`` by ``num_kv_heads``).
        overwrite: replace a non-empty ``out_dir``.

    Returns:
        ``out_dir`` as a Path. The directory appears atomically (written to a sibling temp dir first).
    """
    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(f'hidden_size {hidden_size} must divide by num_heads {num_heads}, '
                         f'and num_heads by num_kv_heads {num_kv_heads}')
    corpus = driving_qa_corpus(seed=seed) + list(texts or [])
    tokenizer = train_driving_tokenizer(corpus, vocab_size)
    padded_vocab = -(-len(tokenizer) // 64) * 64
    config = tiny_qwen2_config(padded_vocab, hidden_size, num_layers, num_heads, num_kv_heads,
                               bos_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
                               eos_id=tokenizer.convert_tokens_to_ids(IM_END),
                               pad_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT))
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    with atomic_directory(out_dir, overwrite) as tmp_dir:
        model.save_pretrained(tmp_dir)
        tokenizer.save_pretrained(tmp_dir)
    return Path(out_dir)
