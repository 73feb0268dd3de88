"""tools/train.py and tools/test.py end to end on the generated mini set: a short run writes a
checkpoint, a resumed run continues at the same iteration, and test.py prints and saves every metric."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data_engine.generate_qa import main as generate_qa
from drivepi.engine.checkpoint_loading import SIGNATURE_KEY, load_checkpoint_file
from drivepi.geometry import OCC_GRID

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def mini_config(mini_dataset, tiny_llm_dir, tmp_path_factory) -> Path:
    """The mini config pointed at the test-preset mini set, its QA files and the tiny LLM."""
    root = Path(mini_dataset['root'])
    for split in ('train', 'val'):
        generate_qa(['--info', str(mini_dataset[f'{split}_info']), '--out', str(root / f'qa_{split}.jsonl')])
    config = tmp_path_factory.mktemp('configs') / 'drivepi_mini_test.py'
    data = f"data_root='{root}/', qa_file='{root}/qa_SPLIT.jsonl'"
    config.write_text(
        f"_base_ = ['{REPO / 'configs' / 'drivepi' / 'drivepi_mini.py'}']\n"
        f"train_dataloader = dict(num_workers=0, persistent_workers=False, "
        f"dataset=dict({data.replace('SPLIT', 'train')}))\n"
        f"test_dataloader = dict(num_workers=0, persistent_workers=False, "
        f"dataset=dict({data.replace('SPLIT', 'val')}))\n"
        f"test_evaluator = [dict(type='OccupancyMetric', data_root='{root}/', ann_file='drivepi_infos_val.pkl',"
        f" class_names={{{{_base_.occ_classes}}}}), dict(type='PlanningMetric'), dict(type='QAMetric')]\n"
        f"model = dict(llm=dict(llm_path='{tiny_llm_dir}'))\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))\n")
    return config


def run_tool(*args) -> str:
    """Run a tool as a user would; fail with its output if it fails."""
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, f'{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


def checkpoint_iter(path: Path) -> int:
    """The iteration of a training checkpoint, read as every tool reads it: safely (``weights_only``, the
    message hub under its allow-list), and checked to carry the model signature the Runner stored."""
    meta = load_checkpoint_file(path)['meta']
    assert set(meta[SIGNATURE_KEY]) == {'state_dict_sha256', 'num_tensors', 'llm_vocab_size', 'tokenizer_sha256'}
    return meta['iter']


def test_train_resume_and_test(mini_config, mini_dataset, tmp_path):
    work = tmp_path / 'work'
    log = run_tool('tools/train.py', mini_config, '--work-dir', work,
                   '--cfg-options', 'train_cfg.max_iters=4', 'param_scheduler=[]')
    assert 'Iter(train) [4/4]' in log
    assert checkpoint_iter(work / 'iter_4.pth') == 4

    log = run_tool('tools/train.py', mini_config, '--work-dir', work, '--resume',
                   '--cfg-options', 'train_cfg.max_iters=6', 'param_scheduler=[]')
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'Iter(train) [5/6]' in log and 'Iter(train) [1/6]' not in log
    assert checkpoint_iter(work / 'iter_6.pth') == 6
    before = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)['state_dict']
    after = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=False)['state_dict']
    assert any(not torch.equal(before[k], after[k]) for k in before), 'the resumed run did not train'

    results = tmp_path / 'results'
    # batch 1 (the default is 8): the 6 held-out frames then leave one iteration after the throughput hook's 5
    # warm-up iterations, whose steady shares are checked below
    out = run_tool('tools/test.py', mini_config, work / 'iter_6.pth', '--work-dir', work, '--out-dir', results,
                   '--blind', '--cfg-options', 'test_dataloader.batch_size=1')
    metrics = json.loads((results / 'metrics.json').read_text())
    for key in ('occ/RayIoU', 'occ/RayIoU@1', 'occ/RayIoU@2', 'occ/RayIoU@4', 'occ/mIoU', 'occ/mAVE',
                'occ/OccScore', 'plan/L2@1s/per_step', 'plan/L2@avg/cumulative',
                'plan/collision@avg/per_step/uniad_vad', 'plan/collision@avg/cumulative/sparsedrive', 'qa/accuracy'):
        assert key in metrics and key in out, key
    assert 0.0 <= metrics['occ/mIoU'] <= 100.0 and 0.0 <= metrics['qa/accuracy'] <= 100.0
    # the blind pass answers the same turns, reported beside the model's
    turns = {k.split('/')[-1]: v for k, v in metrics.items() if k.startswith('qa/num_turns/')}
    assert turns and turns == {k.split('/')[-1]: v for k, v in metrics.items() if k.startswith('blind_qa/num_turns/')}
    assert 0.0 <= metrics['blind_qa/accuracy'] <= 100.0 and 'blind_qa/accuracy' in out
    with open(mini_dataset['val_info'], 'rb') as f:
        val_tokens = {info['token'] for info in pickle.load(f)['data_list']}
    predictions = {p.stem: np.load(p) for p in (results / 'predictions').glob('*.npz')}
    assert set(predictions) == val_tokens
    sample = next(iter(predictions.values()))
    assert sample['occ'].shape == OCC_GRID and sample['occ'].max() <= 16 and sample['traj'].shape == (6, 2)
    timing = json.loads((results / 'timing.json').read_text())
    assert timing['frames'] == len(val_tokens) and timing['seconds'] > 0
    assert timing['frames_per_s'] == pytest.approx(timing['frames'] / timing['seconds'])
    assert 'steady_frames_per_s' in timing  # None when the run is within the hook's warm-up
    assert timing['frames'] > 5 and timing['steady_frames_per_s'] > 0 and 0 <= timing['steady_data_wait_share'] < 1
    assert 0 < timing['steady_metric_share'] < 1 - timing['steady_data_wait_share']
    assert f"evaluated {timing['frames']} frames in" in out


def test_benchmark_model_times_a_train_and_a_test_step(mini_config, tmp_path):
    out = tmp_path / 'benchmark_model.json'
    run_tool('tools/benchmark_model.py', mini_config, '--device', 'cpu', '--iters', '1', '--warmup', '0',
             '--out', out)
    result = json.loads(out.read_text())
    assert result['train_step']['iters'] == result['predict_step']['iters'] == 1
    assert result['train_step']['median_s'] > 0 and result['predict_step']['median_s'] > 0
    assert result['bev_shape'] == [50, 50] and result['spatial_tokens'] == 625  # a quarter of the mini BEV
    assert result['answer_turns_per_predict'] > 0  # the test sample's QA turns were answered
    assert result['params_trainable'] <= result['params_total']
