"""Qwen2LLM (from_pretrained, training modes, loss, generation) and the DrivePI prompt."""
import pytest
import torch
from mmengine.config import Config
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import Qwen2Config, Qwen2ForCausalLM

from drivepi.models.llm import IGNORE_INDEX, DrivePIPrompt, Qwen2LLM
from drivepi.models.llm.qwen2_llm import answer_index
from drivepi.models.llm.special_tokens import IM_END, PLAN_TOKEN, SPATIAL_TOKEN

FULL_CONFIG = 'configs/_base_/models/drivepi_qwen2.5-0.5b.py'
LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=['q_proj', 'v_proj'])


@pytest.fixture(scope='module')
def frozen_llm(tiny_llm_dir):
    return Qwen2LLM(str(tiny_llm_dir), train_mode='frozen').eval()


def conversation():
    return [[dict(question='Are there any cars?', answer='yes'),
             dict(question='How many cars are there?', answer='3')]]


def test_answer_only_label_mask(frozen_llm):
    prompt = DrivePIPrompt(frozen_llm.tokenizer)
    tok = frozen_llm.tokenizer
    batch = prompt.batch([1, 2], num_spatial=4, num_plan=2, conversations=[conversation(), []])
    ids, labels = batch.input_ids, batch.labels
    assert batch.spatial_mask.sum(1).tolist() == [4, 4] and batch.plan_mask.sum(1).tolist() == [2, 2]
    labelled = labels[0] != IGNORE_INDEX
    assert torch.equal(labels[0][labelled], ids[0][labelled])  # labels are unshifted token ids
    expected = tok.encode('yes', add_special_tokens=False) + tok.encode(IM_END) \
        + tok.encode('3', add_special_tokens=False) + tok.encode(IM_END)
    assert labels[0][labelled].tolist() == expected
    # the labelled spans are exactly the answers, each right after its assistant header
    text = tok.decode(ids[0][batch.attention_mask[0].bool()])
    assert text.count(SPATIAL_TOKEN) == 4 and text.count(PLAN_TOKEN) == 2
    assert '<|im_start|>assistant\nyes<|im_end|>\n<|im_start|>user\nHow many cars are there?' in text
    assert 'The driving command is turn left.' in text
    first_answer = labelled.nonzero()[0].item()
    assert tok.decode(ids[0][:first_answer]).endswith('Are there any cars?<|im_end|>\n<|im_start|>assistant\n')
    # the second sample has no conversation: no label, padded after its prefix
    assert (labels[1] == IGNORE_INDEX).all()
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()
    assert (ids[1][batch.attention_mask[1] == 0] == tok.pad_token_id).all()


def test_bad_command_is_rejected(frozen_llm):
    with pytest.raises(ValueError, match='driving command 3'):
        DrivePIPrompt(frozen_llm.tokenizer).prefix_ids(3, 1, 1)


def test_text_loss_matches_hugging_face_loss(frozen_llm, tiny_llm_dir):
    prompt = DrivePIPrompt(frozen_llm.tokenizer)
    batch = prompt.batch([2], 3, 2, [conversation()])
    embeds = frozen_llm.causal_lm.get_input_embeddings()(batch.input_ids)  # placeholders keep their rows
    with torch.no_grad():
        ours = frozen_llm.text_loss(frozen_llm.hidden_states(embeds, batch.attention_mask), batch.labels)
        reference = Qwen2ForCausalLM.from_pretrained(tiny_llm_dir)(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
    assert torch.allclose(ours, reference, atol=1e-5)


def test_answer_index_numbers_runs_of_labelled_tokens():
    selected = torch.tensor([[False, True, True, False, True], [True, False, False, True, True]])
    index = answer_index(selected)
    assert index[selected].tolist() == [0, 0, 1, 2, 3, 3]  # a run at a row's start is a new answer


def test_answer_averaged_loss_weighs_every_answer_the_same(frozen_llm, tiny_llm_dir):
    """'answer' averaging equals the mean over answers of each answer's mean token cross-entropy, computed
    here from the Hugging Face model's logits; 'token' averaging differs when answer lengths differ."""
    prompt = DrivePIPrompt(frozen_llm.tokenizer)
    turns = [[dict(question='Are there any cars?', answer='yes'),
              dict(question='Caption the scene.', answer='two cars park on the left and a truck waits ahead')]]
    batch = prompt.batch([1, 0], 3, 2, [turns, conversation()])
    embeds = frozen_llm.causal_lm.get_input_embeddings()(batch.input_ids)
    with torch.no_grad():
        hidden = frozen_llm.hidden_states(embeds, batch.attention_mask)
        frozen_llm.loss_average = 'answer'
        try:
            ours = frozen_llm.text_loss(hidden, batch.labels)
        finally:
            frozen_llm.loss_average = 'token'
        token_mean = frozen_llm.text_loss(hidden, batch.labels)
        logits = Qwen2ForCausalLM.from_pretrained(tiny_llm_dir)(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    answer_means = []
    for row in range(2):
        targets = batch.labels[row, 1:]
        positions = (targets != IGNORE_INDEX).nonzero().flatten().tolist()
        runs = [[positions[0]]]
        for p in positions[1:]:
            if p == runs[-1][-1] + 1:
                runs[-1].append(p)
            else:
                runs.append([p])
        for run in runs:
            answer_means.append(torch.nn.functional.cross_entropy(logits[row, run], targets[run]))
    assert len(answer_means) == 4
    assert torch.allclose(ours, torch.stack(answer_means).mean(), atol=1e-5)
    assert not torch.allclose(ours, token_mean, atol=1e-3)


def test_unknown_loss_average_is_rejected(tiny_llm_dir):
    with pytest.raises(ValueError, match="loss_average 'turn'"):
        Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', loss_average='turn')


def test_embed_replaces_only_placeholders(frozen_llm):
    prompt = DrivePIPrompt(frozen_llm.tokenizer)
    batch = prompt.batch([0], 3, 2, [conversation()])
    d = frozen_llm.hidden_size
    spatial, plan = torch.randn(1, 3, d), torch.randn(1, 2, d)
    embeds = frozen_llm.embed(batch.input_ids, batch.spatial_mask, spatial, batch.plan_mask, plan)
    plain = frozen_llm.causal_lm.get_input_embeddings()(batch.input_ids)
    assert torch.equal(embeds[batch.spatial_mask], spatial[0]) and torch.equal(embeds[batch.plan_mask], plan[0])
    other = ~(batch.spatial_mask | batch.plan_mask)
    assert torch.equal(embeds[other], plain[other])


def test_greedy_generation_matches_a_no_cache_argmax_loop(frozen_llm):
    prompt = DrivePIPrompt(frozen_llm.tokenizer)
    ids = torch.tensor([prompt.prefix_ids(2, 0, 0) + prompt.question_ids('Are there any cars?')])
    embed = frozen_llm.causal_lm.get_input_embeddings()
    generated = frozen_llm.generate(embed(ids), max_new_tokens=6)
    expected, context = [], ids
    with torch.no_grad():
        for _ in range(6):
            next_id = frozen_llm.causal_lm(input_ids=context, use_cache=False).logits[0, -1].argmax().item()
            if next_id in frozen_llm.stop_ids:
                break
            expected.append(next_id)
            context = torch.cat([context, torch.tensor([[next_id]])], dim=1)
    assert generated == expected and len(generated) > 0
    prefix_len = len(prompt.prefix_ids(2, 0, 0))
    frozen_llm.prefill(embed(ids[:, :prefix_len]))
    assert frozen_llm.generate(embed(ids[:, prefix_len:]), 6, after_prefix=True) == expected
    assert frozen_llm.generate(embed(ids[:, prefix_len:]), 6, after_prefix=True) == expected  # prefix reused
    assert frozen_llm.generate(embed(ids), 3) == expected[:3]  # a whole context clears the prefix


def test_decoder_cache_overflow_is_a_clear_error(tiny_llm_dir):
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', decode_cache_len=8).eval()
    with pytest.raises(ValueError, match='exceed the decoder cache of 8'):
        llm.generate(torch.zeros(1, 6, llm.hidden_size), max_new_tokens=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a CUDA GPU')
def test_cuda_graphs_matches_eager_decoding(tiny_llm_dir):
    eager = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', cuda_graphs=False).eval().cuda()
    graphed = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', cuda_graphs=True, compile_decoder=False).eval().cuda()
    for llm in (eager, graphed):  # large random weights: answers that change from token to token
        torch.manual_seed(0)
        for param in llm.parameters():
            param.data.normal_(std=0.5)
    prompt = DrivePIPrompt(eager.tokenizer)
    ids = torch.tensor([prompt.prefix_ids(1, 0, 0)], device='cuda')
    prefix = eager.causal_lm.get_input_embeddings()(ids)
    for question in ('Are there any cars?', 'How many cars are there?'):
        tail = eager.causal_lm.get_input_embeddings()(torch.tensor([prompt.question_ids(question)], device='cuda'))
        for llm in (eager, graphed):
            llm.prefill(prefix)
        expected = eager.generate(tail, 12, after_prefix=True)
        assert graphed.generate(tail, 12, after_prefix=True) == expected and len(set(expected)) > 2
        assert graphed.decoder.graphs  # the steps were replayed from a graph


def trainable_names(llm):
    return {n for n, p in llm.named_parameters() if p.requires_grad}


def test_lora_trains_adapters_and_freezes_base_weights(tiny_llm_dir):
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='lora', lora_cfg=LORA, gradient_checkpointing=True).train()
    names = trainable_names(llm)
    assert names and all('lora_' in n for n in names)
    assert any('q_proj.lora_A' in n for n in names) and any('v_proj.lora_B' in n for n in names)
    batch = DrivePIPrompt(llm.tokenizer).batch([2], 2, 1, [conversation()])
    embeds = llm.causal_lm.get_input_embeddings()(batch.input_ids)
    llm.text_loss(llm.hidden_states(embeds, batch.attention_mask), batch.labels).backward()
    for name, param in llm.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        else:
            assert param.grad is None, name
    # lora_B starts at zero, so its gradient is what moves the adapter
    assert any(p.grad.abs().sum() > 0 for n, p in llm.named_parameters() if 'lora_B' in n)


def lora_llm_with_live_adapters(tiny_llm_dir, device: str, **kwargs) -> Qwen2LLM:
    """A LoRA LLM whose adapters are the same for every call (seeded) and change its outputs."""
    torch.manual_seed(0)
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='lora', lora_cfg=LORA, **kwargs).to(device).train()
    for name, param in llm.named_parameters():
        if 'lora_B' in name:  # B starts at zero: give the adapters an effect (and lora_A a gradient)
            param.data.normal_(std=0.5)
    return llm


def test_lora_input_cast_is_skipped_under_autocast_with_the_same_outputs_and_gradients(tiny_llm_dir):
    """bf16 weights, float32 adapters: under autocast the adapters' input stays bf16 (peft would cast it to
    float32 and autocast straight back), with identical hidden states and adapter gradients; without
    autocast the cast still happens."""
    llm = lora_llm_with_live_adapters(tiny_llm_dir, 'cpu', dtype='bfloat16')
    batch = DrivePIPrompt(llm.tokenizer).batch([2], 2, 1, [conversation()])
    embeds = llm.embed_ids(batch.input_ids)
    adapters = [p for n, p in llm.named_parameters() if p.requires_grad]
    assert adapters and all(p.dtype == torch.float32 for p in adapters)
    input_dtypes = []
    lora_a = next(m for n, m in llm.named_modules() if n.endswith('q_proj.lora_A.default'))
    lora_a.register_forward_pre_hook(lambda m, args: input_dtypes.append(args[0].dtype))

    def run(amp: bool):
        llm.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            hidden = llm.hidden_states(embeds, batch.attention_mask)
        hidden.square().mean().backward()
        return [hidden.detach()] + [p.grad.clone() for p in adapters]

    ours, plain = run(amp=True), run(amp=False)
    for layer in llm.modules():
        if isinstance(layer, BaseTunerLayer):
            del layer._cast_input_dtype  # back to peft's own cast
    for a, b in zip(ours, run(amp=True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(torch.isfinite(t).all() for t in plain)
    assert input_dtypes == [torch.bfloat16, torch.float32, torch.float32]  # ours/amp, ours/no amp, peft/amp


def test_merged_lora_gives_the_same_hidden_states(tiny_llm_dir):
    llm = lora_llm_with_live_adapters(tiny_llm_dir, 'cpu').eval()
    batch = DrivePIPrompt(llm.tokenizer).batch([2], 2, 1, [conversation()])
    embeds = llm.causal_lm.get_input_embeddings()(batch.input_ids)
    with torch.no_grad():
        before = llm.hidden_states(embeds, batch.attention_mask)
        base = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen').eval().hidden_states(embeds, batch.attention_mask)
        llm.merge_lora()
        after = llm.hidden_states(embeds, batch.attention_mask)
    assert not torch.allclose(before, base, atol=1e-3), 'the adapters must change the output'
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert llm.train_mode == 'frozen' and trainable_names(llm) == set()
    assert not any('lora_' in name for name, _ in llm.named_parameters())
    with pytest.raises(ValueError, match='merge_lora'):
        llm.merge_lora()


def test_frozen_and_full_modes(tiny_llm_dir):
    assert trainable_names(Qwen2LLM(str(tiny_llm_dir), train_mode='frozen')) == set()
    full = Qwen2LLM(str(tiny_llm_dir), train_mode='full')
    assert all(p.requires_grad for p in full.parameters())
    with pytest.raises(ValueError, match='train_mode'):
        Qwen2LLM(str(tiny_llm_dir), train_mode='half')


def test_init_weights_keeps_the_checkpoint(tiny_llm_dir):
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='full')
    before = {n: p.clone() for n, p in llm.named_parameters()}
    llm.init_weights()
    assert all(torch.equal(before[n], p) for n, p in llm.named_parameters())


def test_bf16_lora_with_gradient_checkpointing_trains(tiny_llm_dir):
    """The full-size setting (bf16 weights, LoRA, gradient checkpointing) on the tiny model."""
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='lora', lora_cfg=LORA, gradient_checkpointing=True,
                   dtype='bfloat16').train()
    assert llm.dtype == torch.bfloat16
    batch = DrivePIPrompt(llm.tokenizer).batch([2], 2, 1, [conversation()])
    spatial = torch.randn(1, 2, llm.hidden_size, requires_grad=True)
    plan = torch.zeros(1, 1, llm.hidden_size)
    embeds = llm.embed(batch.input_ids, batch.spatial_mask, spatial, batch.plan_mask, plan)
    hidden = llm.hidden_states(embeds, batch.attention_mask)
    assert hidden.dtype == torch.float32 and torch.isfinite(hidden).all()
    (llm.text_loss(hidden, batch.labels) + hidden[batch.spatial_mask].mean()).backward()
    assert torch.isfinite(spatial.grad).all() and spatial.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in llm.parameters() if p.requires_grad)


def test_special_tokens_are_added_to_a_tokenizer_without_them(tiny_llm_dir, tmp_path):
    """A real Qwen2.5 tokenizer has no DrivePI placeholders: they are added as single special ids."""
    import json
    import shutil
    shutil.copytree(tiny_llm_dir, tmp_path / 'ckpt')
    tokenizer_file = tmp_path / 'ckpt' / 'tokenizer.json'
    data = json.loads(tokenizer_file.read_text())
    data['added_tokens'] = [t for t in data['added_tokens'] if t['content'] not in (SPATIAL_TOKEN, PLAN_TOKEN)]
    tokenizer_file.write_text(json.dumps(data))
    config_file = tmp_path / 'ckpt' / 'tokenizer_config.json'
    config = json.loads(config_file.read_text())
    config['extra_special_tokens'] = ['<|im_start|>', '<|im_end|>']
    config_file.write_text(json.dumps(config))
    from transformers import AutoTokenizer
    assert len(AutoTokenizer.from_pretrained(tmp_path / 'ckpt').encode(SPATIAL_TOKEN)) > 1
    llm = Qwen2LLM(str(tmp_path / 'ckpt'), train_mode='frozen')
    ids = [llm.tokenizer.encode(t, add_special_tokens=False) for t in (SPATIAL_TOKEN, PLAN_TOKEN, IM_END)]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 3
    assert max(i[0] for i in ids) < llm.causal_lm.config.vocab_size


def test_missing_weights_start_from_random_init_with_a_warning(tiny_llm_dir, tmp_path):
    config = Qwen2ForCausalLM.from_pretrained(tiny_llm_dir).config.to_dict()
    keys = ('vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
            'num_key_value_heads')
    with pytest.warns(UserWarning, match='NO LLM WEIGHTS'):
        llm = Qwen2LLM(str(tmp_path / 'absent'), tokenizer_path=str(tiny_llm_dir),
                       llm_config={k: config[k] for k in keys}, train_mode='frozen')
    assert llm.hidden_size == config['hidden_size']
    with pytest.raises(FileNotFoundError, match='no Qwen2 weights'):
        Qwen2LLM(str(tmp_path / 'absent'), tokenizer_path=str(tiny_llm_dir))
    with pytest.raises(FileNotFoundError, match='no tokenizer.json'):
        Qwen2LLM(str(tmp_path / 'absent'))
    with pytest.warns(UserWarning, match='fallback tokenizer'):
        Qwen2LLM(str(tmp_path / 'absent'), fallback_tokenizer_path=str(tiny_llm_dir),
                 llm_config={k: config[k] for k in keys}, train_mode='frozen')


def test_fallback_tokenizer_is_refused_beside_real_weights(tiny_llm_dir, tmp_path):
    import shutil
    (tmp_path / 'weights_only').mkdir()
    for name in ('config.json', 'model.safetensors'):
        shutil.copy(tiny_llm_dir / name, tmp_path / 'weights_only' / name)
    with pytest.raises(FileNotFoundError, match='no tokenizer.json'):
        Qwen2LLM(str(tmp_path / 'weights_only'), fallback_tokenizer_path=str(tiny_llm_dir))


def qwen2_param_count(c: dict) -> int:
    """Parameters of a tied-embedding Qwen2 from its architecture (q/k/v have biases, o/MLP do not)."""
    d, kv, inter = c['hidden_size'], c['num_key_value_heads'] * c['hidden_size'] // c['num_attention_heads'], \
        c['intermediate_size']
    attention = (d * d + d) + 2 * (d * kv + kv) + d * d
    layer = attention + 3 * d * inter + 2 * d
    return c['vocab_size'] * d + c['num_hidden_layers'] * layer + d


def test_full_size_llm_config_builds_on_meta_device():
    llm_config = Config.fromfile(FULL_CONFIG).model.llm.llm_config
    assert (llm_config.hidden_size, llm_config.num_hidden_layers, llm_config.num_attention_heads,
            llm_config.num_key_value_heads, llm_config.vocab_size) == (896, 24, 14, 2, 151936)
    with torch.device('meta'):
        model = Qwen2ForCausalLM(Qwen2Config(**llm_config.to_dict()))
    count = sum(p.numel() for p in model.parameters())
    assert count == qwen2_param_count(llm_config) == 494_032_768  # Qwen2.5-0.5B: 0.49 B parameters
    print(f'Qwen2.5-0.5B architecture: {count:,} parameters')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a CUDA GPU')
def test_cuda_graph_forward_matches_eager_forward(tiny_llm_dir):
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen').eval().cuda()
    embeds = torch.randn(2, 1, 17, llm.hidden_size, device="cuda")
    mask = torch.ones(1, 17, dtype=torch.long, device='cuda')
    with torch.no_grad():
        graphed = [llm.hidden_states(e, mask) for e in embeds]  # one graph, replayed with new inputs
        assert len(llm._graphed_forward.graphs) == 1
        llm.cuda_graphs = False
        eager = [llm.hidden_states(e, mask) for e in embeds]
    for g, e in zip(graphed, eager):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(graphed[0], graphed[1])


def test_decoding_ignores_autocast(tiny_llm_dir):
    """Decoding runs in the LLM's dtype whatever the caller's autocast (a float32 LLM under bf16 autocast
    would give the static cache bf16 values and float32 keys)."""
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen').eval()
    prompt = DrivePIPrompt(llm.tokenizer)
    embed = llm.causal_lm.get_input_embeddings()
    prefix = embed(torch.tensor([prompt.prefix_ids(1, 0, 0)]))
    question = embed(torch.tensor([prompt.question_ids('Are there any cars?')]))
    llm.prefill(prefix)
    expected = llm.generate(question, 6, after_prefix=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        llm.prefill(prefix)
        assert llm.generate(question, 6, after_prefix=True) == expected
    assert llm.decoder.cache.layers[0].keys.dtype == torch.float32


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the SDPA backends differ only on a CUDA GPU'))])
def test_training_forward_avoids_cudnn_attention_with_the_same_hidden_states(tiny_llm_dir, device):
    """With gradients on, the attention runs on every SDPA backend but cuDNN's (a new cuDNN graph per sequence
    length costs ~14 ms of host time a call); the hidden states equal those of the no-grad forward, whose
    backend choice is torch's (on CUDA in bf16 that is cuDNN's when it qualifies)."""
    from torch.profiler import ProfilerActivity, profile
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='full').to(device).train()
    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 37, llm.hidden_size, generator=generator).to(device)
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[1, 30:] = False  # padding: the attention gets a mask
    dtype = torch.bfloat16 if device == 'cuda' else torch.float32
    with torch.autocast(device, dtype=dtype, enabled=device == 'cuda'):
        with torch.no_grad():
            reference = llm.hidden_states(embeds, mask)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
        with profile(activities=activities) as prof:
            hidden = llm.hidden_states(embeds.requires_grad_(), mask)
            hidden[mask.to(device)].sum().backward()
    assert not [e.key for e in prof.key_averages() if 'cudnn_attention' in e.key]
    tolerance = 5e-2 if device == 'cuda' else 1e-5  # bf16 through different attention kernels
    assert torch.allclose(hidden[mask.to(device)], reference[mask.to(device)], atol=tolerance, rtol=tolerance)
    assert embeds.grad is not None and torch.isfinite(embeds.grad).all()


def training_pass_outputs(llm: Qwen2LLM, embeds: torch.Tensor, mask: torch.Tensor) -> list:
    """Hidden states of a training pass over ``embeds`` (padding rows of ``mask`` dropped) and the trainable
    parameters' gradients of their squared mean, under bf16 autocast on a GPU."""
    llm.zero_grad()
    with torch.autocast(embeds.device.type, dtype=torch.bfloat16, enabled=embeds.is_cuda):
        hidden = llm.hidden_states(embeds, mask)[mask.to(embeds.device)]
    hidden.square().mean().backward()
    return [hidden.detach()] + [p.grad.clone() for p in llm.parameters() if p.requires_grad]


def test_compiled_training_stays_eager_off_cuda(tiny_llm_dir):
    llm = lora_llm_with_live_adapters(tiny_llm_dir, 'cpu', compile_training=True)
    eager = lora_llm_with_live_adapters(tiny_llm_dir, 'cpu')
    embeds = torch.randn(2, 11, llm.hidden_size, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 11, dtype=torch.bool)
    for a, b in zip(training_pass_outputs(llm, embeds, mask), training_pass_outputs(eager, embeds, mask)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert llm._compiled_training_pass is None  # nothing was compiled on the CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason='compile_training compiles only on a CUDA GPU')
def test_a_cuda_compiled_training_pass_gives_the_eager_outputs_and_gradients(tiny_llm_dir):
    """The compiled decoder pass (dynamic shapes) equals the eager one in hidden states and LoRA gradients, for
    two prompt lengths (one compilation) and with padding."""
    compiled = lora_llm_with_live_adapters(tiny_llm_dir, 'cuda', compile_training=True)
    eager = lora_llm_with_live_adapters(tiny_llm_dir, 'cuda')
    for length in (29, 41):
        embeds = torch.randn(2, length, compiled.hidden_size, generator=torch.Generator().manual_seed(length)).cuda()
        mask = torch.ones(2, length, dtype=torch.bool)
        mask[1, length - 5:] = False
        ours, reference = training_pass_outputs(compiled, embeds, mask), training_pass_outputs(eager, embeds, mask)
        assert len(ours) == len(reference) > 2
        for a, b in zip(ours, reference):  # bf16: fused kernels round differently
            torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2)
    assert compiled._compiled_training_pass is not None
