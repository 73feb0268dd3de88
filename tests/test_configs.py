"""Every runnable config parses and its parts build: pipelines, optimizer, schedulers, evaluators."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIMIZERS, PARAM_SCHEDULERS

from drivepi.geometry import DETECTION_CLASSES, OCC3D_CLASSES
from drivepi.registry import METRICS
from drivepi.utils import load_config, register_all_modules

CONFIGS = sorted((Path(__file__).resolve().parents[1] / 'configs' / 'drivepi').glob('*.py'))
ALL_CONFIGS = sorted((Path(__file__).resolve().parents[1] / 'configs').rglob('*.py'))


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_config_parts_build(config):
    register_all_modules()
    cfg = Config.fromfile(config)
    Compose(cfg.train_dataloader.dataset.pipeline)
    Compose(cfg.test_dataloader.dataset.pipeline)
    linear = torch.nn.Linear(3, 2)
    optimizer = OPTIMIZERS.build(dict(cfg.optim_wrapper.optimizer, params=linear.parameters()))
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=OptimWrapper(optimizer))) for s in cfg.param_scheduler]
    assert len(schedulers) == len(cfg.param_scheduler)
    for metric in cfg.test_evaluator:
        assert METRICS.get(metric['type']) is not None, metric['type']


@pytest.mark.parametrize('config', ALL_CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_config_passes_the_top_level_key_check(config):
    """Helper variables (data_root, img_size, occ_classes, max_iters, ...) are not taken for misspelt keys."""
    assert load_config(str(config))


def test_full_size_training_config_values():
    cfg = Config.fromfile(next(p for p in CONFIGS if p.name == 'drivepi_qwen2.5-0.5b_8xb4-24e_nuscenes-openocc.py'))
    assert cfg.optim_wrapper.type == 'GuardedAmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.optimizer.fused and cfg.env_cfg.cudnn_benchmark
    assert cfg.train_dataloader.batch_size == 4 and cfg.num_sweeps == 10 and cfg.img_size == (256, 704)
    llm = cfg.model.llm
    assert not llm.gradient_checkpointing and llm.dtype == 'bfloat16' and llm.train_mode == 'lora'
    assert llm.lora_cfg.lora_dropout == 0.0 and llm.compile_training
    assert cfg.model.lidar_branch.voxel_filter.keep_ratios == [0.3, 0.6, 0.9]
    fsdp = Config.fromfile(next(p for p in CONFIGS if p.name == 'drivepi_qwen2.5-3b_fsdp_8xb4-24e_nuscenes-openocc.py'))
    assert not fsdp.model.llm.compile_training  # measured without FSDP only


def test_full_size_from_scratch_config_trains_the_whole_llm_under_a_budget():
    cfg = Config.fromfile(next(p for p in CONFIGS if p.name == 'drivepi_qwen2.5-0.5b_1xb4_mini-full.py'))
    assert not cfg.model.llm.compile_training  # its minutes go to training, not to the compilation
    assert cfg.model.llm.train_mode == 'full' and cfg.model.llm.dtype == 'float32'   # bf16 autocast, fp32 master
    assert cfg.train_cfg.type == 'FastResumeIterBasedTrainLoop'
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    assert [h.type for h in cfg.custom_hooks] == ['TrainTimeBudgetHook']
    assert cfg.num_sweeps == 10 and cfg.img_size == (256, 704)


BASE = CONFIGS[0].parents[1] / '_base_'


@pytest.mark.parametrize('name', ['drivepi_mini', 'nuscenes_openocc', 'nuscenes_occ3d'])
def test_dataset_base_configs_build(name):
    register_all_modules()
    cfg = Config.fromfile(BASE / 'datasets' / f'{name}.py')
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        Compose(loader.dataset.pipeline)
        assert loader.dataset.data_root == cfg.data_root and loader.dataset.metainfo.occ_classes == cfg.occ_classes


def test_occ3d_config_overrides_only_what_differs():
    openocc = Config.fromfile(BASE / 'datasets' / 'nuscenes_openocc.py')
    occ3d = Config.fromfile(BASE / 'datasets' / 'nuscenes_occ3d.py')
    assert tuple(occ3d.occ_classes) == OCC3D_CLASSES and tuple(occ3d.metainfo.classes) == DETECTION_CLASSES
    for split, loader in (('train', 'train_dataloader'), ('val', 'test_dataloader')):
        a, b = openocc[loader].dataset, occ3d[loader].dataset
        assert b.ann_file == f'drivepi_occ3d_infos_{split}.pkl'
        assert [dict(s, num_classes=18, with_flow=False) if s.type == 'LoadOccFlowGT' else s
                for s in a.pipeline] == b.pipeline
        assert {k: v for k, v in a.items() if k not in ('ann_file', 'pipeline', 'metainfo')} == \
            {k: v for k, v in b.items() if k not in ('ann_file', 'pipeline', 'metainfo')}
