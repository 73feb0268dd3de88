"""The assembled DrivePI model: losses, gradients, predict outputs, input errors, full-size config."""
import copy
import math

import numpy as np
import pytest
import torch
from mmdet3d.structures import Det3DDataSample
from mmengine.config import Config

from drivepi.geometry import OCC_GRID
from drivepi.registry import MODELS
from drivepi.utils import register_all_modules

FULL_CONFIG = 'configs/_base_/models/drivepi_qwen2.5-0.5b.py'
IMG_HW = (32, 88)
LOSS_KEYS = {'loss_text', 'loss_occ_ce', 'loss_occ_lovasz', 'loss_flow', 'loss_plan', 'loss_plan_col',
             'loss_importance', 'loss_token_importance'}


def ego2img_six_views() -> np.ndarray:
    """(6, 4, 4) ego -> pixel projections of six cameras 1.5 m up, looking out at 60 degree steps."""
    intrinsics = np.eye(4)
    intrinsics[:3, :3] = [[40.0, 0, IMG_HW[1] / 2], [0, 40.0, IMG_HW[0] / 2], [0, 0, 1]]
    mats = []
    for yaw in np.deg2rad(np.arange(0, 360, 60)):
        cam2ego = np.eye(4)
        cam2ego[:3, :3] = np.stack([[np.sin(yaw), -np.cos(yaw), 0], [0, 0, -1],
                                    [np.cos(yaw), np.sin(yaw), 0]], axis=1)
        cam2ego[:3, 3] = [0, 0, 1.5]
        mats.append(intrinsics @ np.linalg.inv(cam2ego))
    return np.stack(mats).astype(np.float32)


def make_sample(seed: int, conversations: list) -> dict:
    """One packed sample (points, imgs, Det3DDataSample) with random GT and a box in the plan's way."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(3000, 5, generator=g) * torch.tensor([80.0, 80.0, 6.4, 255.0, 0.5]) \
        - torch.tensor([40.0, 40.0, 1.0, 0.0, 0.0])
    imgs = torch.randint(0, 256, (6, 3) + IMG_HW, generator=g, dtype=torch.uint8)
    gt_occ = torch.full(OCC_GRID, 16, dtype=torch.long)
    gt_occ[90:110, 95:105, 2:6] = torch.randint(0, 16, (20, 10, 4), generator=g)
    ds = Det3DDataSample(metainfo=dict(
        ego_fut_cmd=seed % 3, ego_status=np.array([5.0, 0.1, 0.2, 0.0, 0.01], np.float32),
        ego2img=ego2img_six_views(), cam_valid=np.array([True] * 5 + [False]), img_shape=IMG_HW))
    ds.gt_occ = gt_occ
    ds.gt_flow = torch.randn(OCC_GRID + (2,), generator=g)
    ds.gt_mask_camera = torch.rand(OCC_GRID, generator=g) < 0.3
    ds.gt_traj = torch.tensor([[2.5 * (t + 1), 0.2 * t] for t in range(6)])
    ds.gt_traj_mask = torch.ones(6)
    ds.gt_fut_boxes = [torch.tensor([[2.5 * (t + 1), 0.0, -1.0, 4.0, 2.0, 1.5, 0.0]]) for t in range(6)]
    ds.conversations = conversations
    return dict(inputs=dict(points=points, img=imgs), data_samples=ds)


CONVERSATIONS = [[[dict(question='Are there any cars?', answer='yes', type='exist', family='nuscenes_qa'),
                   dict(question='How many cars are there?', answer='2', type='count', family='nuscenes_qa')],
                  [dict(question='What should the ego vehicle do?', answer='go straight', type='plan',
                        family='planning')]],
                 []]


def collate(samples: list) -> dict:
    """pseudo_collate's layout; images under ``img``, which Det3DDataPreprocessor normalises, pads
    and stacks into ``imgs`` (B, V, 3, H, W)."""
    return dict(inputs=dict(points=[s['inputs']['points'] for s in samples],
                            img=[s['inputs']['img'] for s in samples]),
                data_samples=[s['data_samples'] for s in samples])


@pytest.fixture(scope='module')
def model(mini_cfg):
    torch.manual_seed(0)
    model = MODELS.build(mini_cfg)
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def batch():
    return collate([make_sample(0, CONVERSATIONS[0]), make_sample(1, CONVERSATIONS[1])])


def test_loss_is_finite_and_every_trainable_parameter_gets_a_gradient(model, batch):
    model.train()
    model.zero_grad()
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    assert data['inputs']['imgs'].shape == (2, 6, 3, 32, 96)  # padded to a multiple of 32
    losses = model(**data, mode='loss')
    assert LOSS_KEYS <= set(losses)
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    assert losses['loss_text'] > 0 and losses['loss_plan_col'] > 0  # GT boxes sit on the planned path
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    for module_name in ('lidar_branch', 'camera_branch', 'fuser', 'token_filter', 'projector', 'spatial_position',
                        'llm', 'back_projector', 'heads.occ', 'heads.flow', 'heads.plan'):
        grads = [p.grad for p in model.get_submodule(module_name).parameters() if p.requires_grad]
        assert all(torch.isfinite(g).all() for g in grads), module_name
        assert any(g.abs().sum() > 0 for g in grads), module_name
    assert model.plan_queries.grad.abs().sum() > 0


def test_train_step_logs_the_parsed_losses_as_floats(model, batch):
    """``train_step`` brings the logged values to the host in one copy: floats, the total equal to the sum."""
    from mmengine.optim import OptimWrapper
    model.train()
    outputs = model.train_step(copy.deepcopy(batch), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0)))
    assert LOSS_KEYS | {'loss', 'voxel_keep_ratio'} <= set(outputs)
    assert all(type(value) is float and math.isfinite(value) for value in outputs.values())
    total = sum(value for key, value in outputs.items() if key.startswith('loss_'))
    assert math.isclose(outputs['loss'], total, rel_tol=1e-5)


LANGUAGE_STAGE_FROZEN = ['lidar_branch', 'camera_branch', 'fuser', 'token_filter', 'back_projector', 'heads']


def test_frozen_modules_train_only_the_language_side(mini_cfg, batch):
    torch.manual_seed(0)
    model = MODELS.build(dict(mini_cfg, frozen_modules=LANGUAGE_STAGE_FROZEN))
    model.init_weights()
    model.train()
    for name in LANGUAGE_STAGE_FROZEN:  # frozen parts keep test-time behaviour (BN statistics, filters)
        assert not any(m.training for m in model.get_submodule(name).modules()), name
    assert model.llm.training and model.projector.training
    bn_stats = {n: b.clone() for n, b in model.named_buffers() if n.startswith('lidar_branch') and 'running' in n}
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    losses = model(**data, mode='loss')
    assert {k for k in losses if k.startswith('loss')} == {'loss_text'}  # frozen parts' losses are skipped
    losses['loss_text'].backward()
    for name in LANGUAGE_STAGE_FROZEN:
        assert all(p.grad is None and not p.requires_grad for p in model.get_submodule(name).parameters()), name
    for name in ('llm', 'projector', 'spatial_position'):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.get_submodule(name).parameters())
    assert bn_stats and all(torch.equal(b, dict(model.named_buffers())[n]) for n, b in bn_stats.items())


def test_frozen_modules_must_name_freezable_parts(mini_cfg):
    with pytest.raises(ValueError, match="'llm'.*can be frozen"):
        MODELS.build(dict(mini_cfg, frozen_modules=['llm']))


def test_place_tokens_reach_training_and_answers(mini_cfg):
    """With ``place_tokens`` a question naming a place trains the projector through its place tokens, and
    ``predict`` decodes from embeddings that hold them (the decoder's inputs differ from the plain token
    embeddings exactly at the place's tokens)."""
    torch.manual_seed(0)
    model = MODELS.build(dict(mini_cfg, place_tokens=True))
    model.init_weights()
    question = dict(question='What is at x = 6.0 m, y = -1.0 m?', answer='car', type='object', family='occupancy')
    place_batch = collate([make_sample(0, [[question]])])
    model.train()
    grads = []
    for place_tokens in (True, False):
        model.place_tokens = place_tokens
        model.zero_grad()
        torch.manual_seed(1)
        model(**model.data_preprocessor(copy.deepcopy(place_batch), training=True), mode='loss')['loss_text'].backward()
        grads.append(model.projector.mlp[0].weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])  # the place tokens pass their gradient to the projector
    model.place_tokens = True
    model.eval()
    seen = []
    generate_batch = model.llm.generate_batch
    model.llm.generate_batch = lambda continuations, *args: seen.extend(continuations) or generate_batch(
        continuations, *args)
    data = model.data_preprocessor(copy.deepcopy(place_batch), training=False)
    out = model(**data, mode='predict')
    assert len(out[0].pred_answers) == 1 and isinstance(out[0].pred_answers[0][0], str)
    ids = model.prompt.question_ids(question['question'])
    in_place = ~model.prompt.token_places(ids)[:, 0].isnan()
    changed = (seen[0][0] - model.llm.embed_ids(ids)).abs().sum(-1) > 0
    assert in_place.any() and torch.equal(changed, in_place)


def test_predict_outputs_follow_the_contract(model, batch):
    model.eval()
    data = model.data_preprocessor(copy.deepcopy(batch), training=False)
    results = model(**data, mode='predict')
    assert len(results) == 2
    for ds, conversations in zip(results, CONVERSATIONS):
        assert ds.pred_occ.shape == OCC_GRID and ds.pred_occ.dtype == torch.uint8 and int(ds.pred_occ.max()) <= 16
        assert ds.pred_flow.shape == OCC_GRID + (2,) and torch.isfinite(ds.pred_flow).all()
        assert ds.pred_traj.shape == (6, 2) and torch.isfinite(ds.pred_traj).all()
        assert [len(a) for a in ds.pred_answers] == [len(c) for c in conversations]
        assert all(isinstance(text, str) for answers in ds.pred_answers for text in answers)
    raw = model(**data, mode='tensor')
    assert raw['occ_logits'].shape == (2,) + OCC_GRID + (17,)
    assert torch.equal(raw['occ_logits'].argmax(-1).to(torch.uint8)[0], results[0].pred_occ)
    for i, ds in enumerate(results):  # predict's plan is the head's raw plan through the config's plan refiner
        assert model.plan_refiner is not None
        torch.testing.assert_close(model.plan_refiner(raw['traj'][i], ds.pred_occ, ds.pred_flow), ds.pred_traj)


def test_predict_does_not_depend_on_the_questions(model, batch):
    """Occupancy and trajectory come from tokens before the conversation (causal attention)."""
    model.eval()
    other = copy.deepcopy(batch)
    other['data_samples'][0].conversations = []
    a = model(**model.data_preprocessor(copy.deepcopy(batch), False), mode='tensor')
    b = model(**model.data_preprocessor(other, False), mode='tensor')
    assert torch.equal(a['occ_logits'], b['occ_logits']) and torch.equal(a['traj'], b['traj'])


def test_blind_pass_hides_the_scene_and_only_the_scene(model, batch):
    """``blind_spatial_tokens`` zeroes the spatial tokens: two different scenes then give the LLM the same
    sequence (same command and questions), while with the scene they differ."""
    model.eval()
    samples = [copy.deepcopy(batch['data_samples'][0]) for _ in range(2)]
    conversations = [CONVERSATIONS[0]] * 2
    bev = torch.randn(2, model.token_filter.scorer[0].in_channels, 50, 50, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        seen = model._run_llm(bev, samples, conversations)
        model.blind_spatial_tokens = True
        try:
            blind = model._run_llm(bev, samples, conversations)
        finally:
            model.blind_spatial_tokens = False
    spatial = blind['prompt'].spatial_mask
    assert torch.equal(blind['embeds'][spatial], torch.zeros_like(blind['embeds'][spatial]))
    torch.testing.assert_close(blind['hidden'][0], blind['hidden'][1])
    assert not torch.allclose(seen['hidden'][0], seen['hidden'][1])
    assert torch.equal(blind['embeds'][~spatial], seen['embeds'][~spatial])  # everything else equal


@pytest.mark.parametrize('bad, match', [
    ('nan', 'NaN'), ('empty', 'empty point cloud'), ('shape', r'shape \(N, 5\)'), ('no_cmd', 'ego_fut_cmd'),
    ('gt_shape', r'`gt_occ` has shape \(100, 200, 16\)'), ('gt_nan', '`gt_flow` contains NaN')])
def test_bad_inputs_raise_clear_errors(model, batch, bad, match):
    model.train()
    data = copy.deepcopy(batch)
    points, ds = data['inputs']['points'], data['data_samples'][0]
    if bad == 'nan':
        points[0][5, 1] = float('nan')
    elif bad == 'empty':
        points[1] = points[1][:0]
    elif bad == 'shape':
        points[0] = points[0][:, :4]
    elif bad == 'no_cmd':
        del ds.ego_fut_cmd
    elif bad == 'gt_shape':
        for sample in data['data_samples']:
            sample.gt_occ = sample.gt_occ[:100]
            sample.gt_mask_camera = sample.gt_mask_camera[:100]
    elif bad == 'gt_nan':
        ds.gt_flow[0, 0, 0, 0] = float('nan')
    data = model.data_preprocessor(data, training=True)
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        model(**data, mode='loss')


def test_full_size_config_builds_on_meta_device(tiny_llm_dir):
    register_all_modules()
    cfg = Config.fromfile(FULL_CONFIG).model
    cfg.llm.fallback_tokenizer_path = str(tiny_llm_dir)  # no Qwen2.5 tokenizer or weights on this machine
    with torch.device('meta'), pytest.warns(UserWarning, match='NO LLM WEIGHTS'):
        model = MODELS.build(cfg)
    llm_params = sum(p.numel() for p in model.llm.causal_lm.parameters())
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f'full DrivePI: {total:,} parameters, LLM {llm_params:,}, trainable (LoRA + rest) {trainable:,}')
    assert model.llm.hidden_size == 896 and model.plan_queries.shape == (6, 896)
    assert math.isclose(llm_params, 494_032_768, rel_tol=0.02)  # Qwen2.5-0.5B + LoRA adapters
    assert trainable < total - 490_000_000  # the LLM base weights are frozen under LoRA


def test_deploy_hook_merges_lora_without_changing_predictions(mini_cfg, batch):
    """tools/test.py's DeployModelHook folds the LoRA adapters in before testing: same outputs, no adapters."""
    from types import SimpleNamespace

    from drivepi.engine import DeployModelHook
    cfg = copy.deepcopy(mini_cfg)
    cfg.llm.update(train_mode='lora', lora_cfg=dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj', 'up_proj']))
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    for name, param in model.named_parameters():
        if 'lora_B' in name:  # B starts at zero: give the adapters an effect
            param.data.normal_(std=0.3)
    data = model.data_preprocessor(copy.deepcopy(batch), training=False)
    with torch.no_grad():
        before = model._forward(data['inputs'], data['data_samples'])
        DeployModelHook().before_test(SimpleNamespace(model=model))
        after = model._forward(data['inputs'], data['data_samples'])
    assert model.llm.train_mode == 'frozen' and not any('lora_' in n for n, _ in model.named_parameters())
    for key in ('occ_logits', 'flow', 'traj'):
        torch.testing.assert_close(after[key], before[key], rtol=1e-4, atol=1e-4)


def test_single_sample_predict_reuses_its_llm_pass_for_the_answers(model, batch):
    """A batch of one sample with questions takes the decoder's prefill as its LLM pass (the prefix is
    encoded once): the same answers and outputs as the same sample predicted in a batch of two."""
    model.eval()
    pair = model(**model.data_preprocessor(copy.deepcopy(batch), False), mode='predict')[0]
    single_batch = collate([make_sample(0, CONVERSATIONS[0])])
    calls = []
    original = model.llm.prefill
    model.llm.prefill = lambda embeds, *args: calls.append(embeds.shape) or original(embeds, *args)
    try:
        single = model(**model.data_preprocessor(single_batch, False), mode='predict')[0]
    finally:
        del model.llm.prefill
    assert len(calls) == 1  # one encoding of the prefix for the heads and both conversations
    assert single.pred_answers == pair.pred_answers and [len(a) for a in single.pred_answers] == [2, 1]
    torch.testing.assert_close(single.pred_traj, pair.pred_traj, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(single.pred_flow, pair.pred_flow, rtol=1e-4, atol=1e-4)
    assert (single.pred_occ == pair.pred_occ).float().mean() > 0.999


def test_samples_answered_together_match_samples_answered_one_after_another(mini_cfg):
    """Where the decoder batches, a batch's LLM pass is one prefill of every sample's prefix (other scenes and
    driving commands; padded prefixes: tests/models/test_greedy_decoder.py) and the turns of all samples'
    conversations are decoded together, each after its own sample's prefix: the same answers and outputs as the
    samples one after another (each prefix encoded again)."""
    torch.manual_seed(0)
    model = MODELS.build(mini_cfg).eval()
    for param in model.llm.parameters():  # large random weights: answers that differ between the samples
        param.data.normal_(std=0.5)
    conversations = [CONVERSATIONS[0], [[dict(question='Is it moving?', answer='no', type='status',
                                              family='nuscenes_qa')]], []]
    samples = collate([make_sample(seed, conv) for seed, conv in enumerate(conversations)])
    assert len({ds.ego_fut_cmd for ds in samples['data_samples']}) == 3
    outputs, calls = {}, []
    original = model.llm.prefill
    model.llm.prefill = lambda embeds, *args: calls.append(tuple(embeds.shape[:1])) or original(embeds, *args)
    try:
        for devices in ((), ('cpu',)):
            model.llm.batch_decoding_devices = devices
            outputs[devices] = model(**model.data_preprocessor(copy.deepcopy(samples), False), mode='predict')
    finally:
        del model.llm.prefill
    assert calls == [(1,), (1,), (3,)]  # one after another: the samples with questions; together: one pass
    together, alone = outputs[('cpu',)], outputs[()]
    assert [ds.pred_answers for ds in together] == [ds.pred_answers for ds in alone]
    assert [[len(a) for a in ds.pred_answers] for ds in together] == [[2, 1], [1], []]
    texts = [text for ds in together for answers in ds.pred_answers for text in answers]
    assert len(set(texts)) >= 3 and all(texts)
    for a, b in zip(together, alone):
        torch.testing.assert_close(a.pred_traj, b.pred_traj, rtol=1e-4, atol=1e-4)
        assert (a.pred_occ == b.pred_occ).float().mean() > 0.999


def test_rows_at_gathers_the_masked_positions_in_order():
    from drivepi.models.drivepi import rows_at
    hidden = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    mask = torch.tensor([[False, True, False, True, False], [True, False, False, False, True]])
    out = rows_at(hidden, mask)
    assert out.shape == (2, 2, 3)
    torch.testing.assert_close(out, hidden[mask].view(2, 2, 3))
    torch.testing.assert_close(out[1, 1], hidden[1, 4])
