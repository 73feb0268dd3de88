"""The full-size model config (configs/_base_/models/drivepi_qwen2.5-0.5b.py) on a Qwen2.5-0.5B directory laid
out as a download (random weights, the real tokenizer, 2 decoder layers: the ``qwen2_5_dir`` fixture): DrivePI's
special tokens are added without resizing the 151,936-row embedding, LoRA attaches, a train step and ``predict``
run on CPU."""
import copy
import warnings
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from safetensors.torch import load_file
from test_drivepi import CONVERSATIONS, collate, make_sample  # the model tests' small synthetic samples

from drivepi.geometry import OCC_GRID
from drivepi.models.llm.special_tokens import DRIVEPI_SPECIAL_TOKENS
from drivepi.registry import MODELS
from drivepi.utils import register_all_modules

FULL_CONFIG = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models' / 'drivepi_qwen2.5-0.5b.py'


@pytest.fixture(scope='module')
def full_model(qwen2_5_dir):
    """The full-size model config on the random Qwen2.5 directory, as a downloaded one is given
    (llm_path only); fewer BEV tokens and a short answer limit keep the CPU test short."""
    register_all_modules()
    cfg = Config.fromfile(FULL_CONFIG).model
    cfg.llm.llm_path = str(qwen2_5_dir)
    cfg.token_filter.keep_ratio = 0.02
    cfg.max_answer_tokens = 4
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model = MODELS.build(cfg)
    assert not [w for w in caught if 'NO LLM WEIGHTS' in str(w.message) or 'fallback' in str(w.message)]
    model.init_weights()
    return model


def test_full_size_config_loads_the_checkpoint_as_a_download(full_model, qwen2_5_dir, qwen_reference):
    llm = full_model.llm
    assert llm.train_mode == 'lora' and llm.dtype == torch.bfloat16 and llm.hidden_size == 896
    assert len(llm.causal_lm.model.layers) == 2
    # DrivePI's two placeholders follow Qwen2.5's 151,665 tokens; 151,936 rows suffice, so no resize
    assert [llm.tokenizer.convert_tokens_to_ids(t) for t in DRIVEPI_SPECIAL_TOKENS] == [151665, 151666]
    embed = llm.causal_lm.get_input_embeddings().weight
    assert embed.shape == (151936, 896) and llm.causal_lm.lm_head.weight.data_ptr() == embed.data_ptr()
    stored = load_file(qwen2_5_dir / 'model.safetensors')['model.embed_tokens.weight']
    assert torch.equal(embed.detach(), stored)  # the checkpoint's weights, not a fresh init
    # LoRA adapters train, the Qwen2.5 weights stay frozen
    trainable = {n for n, p in llm.named_parameters() if p.requires_grad}
    assert trainable and all('lora_' in n for n in trainable)
    # the prompt's question turn has Qwen2.5's own token ids
    question = 'Is there a pedestrian 12 m ahead of the ego vehicle?'
    assert full_model.prompt.question_ids(question) == qwen_reference.encode(
        f'<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n')


def test_full_size_model_trains_a_step_and_predicts_on_cpu(full_model):
    batch = collate([make_sample(0, CONVERSATIONS[0])])
    full_model.train()
    lora = {n: p.detach().clone() for n, p in full_model.llm.named_parameters() if p.requires_grad}
    base = full_model.llm.causal_lm.model.layers[0].mlp.up_proj.base_layer.weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in full_model.parameters() if p.requires_grad], lr=1e-3)
    losses = full_model(**full_model.data_preprocessor(copy.deepcopy(batch), training=True), mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss) and losses['loss_text'] > 0
    loss.backward()
    optimizer.step()
    changed = [n for n, p in full_model.llm.named_parameters() if p.requires_grad and not torch.equal(p, lora[n])]
    assert changed and torch.equal(full_model.llm.causal_lm.model.layers[0].mlp.up_proj.base_layer.weight, base)
    full_model.eval()
    result = full_model(**full_model.data_preprocessor(copy.deepcopy(batch), training=False), mode='predict')[0]
    assert result.pred_occ.shape == OCC_GRID and result.pred_traj.shape == (6, 2)
    assert [len(answers) for answers in result.pred_answers] == [len(c) for c in CONVERSATIONS[0]]
    assert all(isinstance(text, str) for answers in result.pred_answers for text in answers)
