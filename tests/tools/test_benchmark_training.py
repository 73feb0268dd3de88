"""tools/benchmark_training.py end to end on the CPU: the mini config's real train dataloader on the generated mini
set, real training steps, a table and a JSON report (the GPU figures come from the same code path)."""
import importlib.util
import json
import math
from pathlib import Path

import torch
from conftest import REPO_ROOT


def test_benchmark_training_on_the_mini_set(tmp_path, mini_dataset, tiny_llm_dir):
    from data_engine.generate_qa import main as generate_qa
    root = Path(mini_dataset['root'])
    if not (root / 'qa_train.jsonl').is_file():
        generate_qa(['--info', str(mini_dataset['train_info']), '--out', str(root / 'qa_train.jsonl')])
    spec = importlib.util.spec_from_file_location('benchmark_training', REPO_ROOT / 'tools' / 'benchmark_training.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'train.json'
    config = REPO_ROOT / 'configs' / 'drivepi' / 'drivepi_mini.py'
    strategy = torch.multiprocessing.get_sharing_strategy()
    try:
        tool.main([str(config), '--data-root', str(root), '--batch-size', '2', '--iters', '1', '--warmup', '1',
                   '--num-workers', '0', '--device', 'cpu', '--out', str(out),
                   '--cfg-options', f'model.llm.llm_path={tiny_llm_dir}'])
    finally:
        torch.multiprocessing.set_sharing_strategy(strategy)
    report = json.loads(out.read_text())
    assert report['tensor_sharing'] == 'file_system'   # the config's default_hooks.tensor_sharing, as in training
    assert report['batch_size'] == 2 and report['num_train_samples'] > 0
    assert report['samples_per_s'] > 0 and math.isclose(report['samples_per_s'] * report['s_per_step'], 2)
    assert 0 <= report['loader_wait_s_per_step'] < report['s_per_step']
    assert report['host_syncs_per_step'] == report['gpu_busy_share'] == 'n/a'  # counted on a GPU only
    assert {'loss', 'loss_occ_lovasz', 'loss_plan_col', 'loss_text'} <= set(report['losses'])
    assert all(math.isfinite(value) for value in report['losses'].values())
    assert tool.under_root({'a': ['data/x/infos.pkl', 'other/y']}, 'data/x/', '/d/') == {'a': ['/d/infos.pkl',
                                                                                             'other/y']}
