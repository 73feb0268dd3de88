"""The tiny Qwen2 checkpoint: Hugging Face directory format, from_pretrained round trip, tokenizer."""
import json

import pytest
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM

from drivepi.models.llm.special_tokens import DRIVEPI_SPECIAL_TOKENS, QWEN_SPECIAL_TOKENS
from drivepi.testing import make_tiny_llm

DRIVING_TEXT = ('Is there a pedestrian 12.5 m ahead of the ego vehicle? Yes, a pedestrian is standing '
                'at (12.50, -3.20); the ego vehicle should slow down and turn left.')


def test_checkpoint_is_in_hugging_face_format(tiny_llm_dir):
    for name in ('config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'):
        assert (tiny_llm_dir / name).is_file(), name
    config = json.loads((tiny_llm_dir / 'config.json').read_text())
    assert config['model_type'] == 'qwen2' and config['architectures'] == ['Qwen2ForCausalLM']
    assert config['tie_word_embeddings'] is True and config['vocab_size'] % 64 == 0


def test_from_pretrained_round_trip_gives_same_logits(tiny_llm_dir, tmp_path):
    model = Qwen2ForCausalLM.from_pretrained(tiny_llm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    ids = torch.tensor([tokenizer.encode(DRIVING_TEXT)])
    model.save_pretrained(tmp_path)
    reloaded = Qwen2ForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits, logits_reloaded = model(ids).logits, reloaded(ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size)
    assert torch.equal(logits, logits_reloaded)


def test_tokenizer_round_trips_driving_text_and_keeps_special_tokens_whole(tiny_llm_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    assert tokenizer.decode(tokenizer.encode(DRIVING_TEXT)) == DRIVING_TEXT
    ids = set()
    for token in QWEN_SPECIAL_TOKENS + DRIVEPI_SPECIAL_TOKENS:
        encoded = tokenizer.encode(f'a{token}b', add_special_tokens=False)
        assert len(encoded) == 3 and tokenizer.convert_ids_to_tokens(encoded[1]) == token
        ids.add(encoded[1])
    assert len(ids) == 5
    # the model's embedding table covers every token id
    assert len(tokenizer) <= json.loads((tiny_llm_dir / 'config.json').read_text())['vocab_size']


def test_tokenizer_is_compact_on_driving_questions(tiny_llm_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    question = 'How many pedestrians are to the front left of the ego car?'
    assert len(tokenizer.encode(question)) <= len(question.split()) + 2  # about a token per word


def test_extra_texts_enter_the_vocabulary(tmp_path):
    word = 'roundabout'
    plain = AutoTokenizer.from_pretrained(make_tiny_llm(tmp_path / 'plain', vocab_size=600, num_layers=1))
    with_qa = AutoTokenizer.from_pretrained(make_tiny_llm(tmp_path / 'qa', texts=[f'enter the {word}'] * 50,
                                                          vocab_size=600, num_layers=1))
    assert len(with_qa.encode(f' {word}')) == 1 < len(plain.encode(f' {word}'))


def test_refuses_to_overwrite_a_checkpoint(tiny_llm_dir):
    with pytest.raises(FileExistsError, match='not empty'):
        make_tiny_llm(tiny_llm_dir)


def test_cli_reads_question_and_answer_text_from_qa_files(tmp_path):
    import importlib.util

    from drivepi.datasets.qa_schema import QAConversation, QARecord, QATurn, write_qa_file
    spec = importlib.util.spec_from_file_location('make_tiny_llm_cli', 'tools/make_tiny_llm.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    turns = [QATurn('Is the barrier moving?', 'no', 'status'), QATurn('How many cones?', '4', 'count')]
    write_qa_file([QARecord('tok0', [QAConversation('c0', 'flow', turns)])], tmp_path / 'qa.jsonl')
    assert cli.qa_texts([str(tmp_path / 'qa.jsonl')]) == ['Is the barrier moving?', 'no', 'How many cones?', '4']
