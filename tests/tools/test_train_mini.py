"""tools/gpu/train_mini.sh end to end at tiny sizes on the CPU, as CI runs it: a first job makes the data,
trains until its wall-clock budget is spent and evaluates; a chained second job, in a fresh work dir as on
another machine, resumes from the checkpoint the first one returned and reuses the data. Each job leaves only
what a GPU machine hands back (at most 8 files of at most 16 MB)."""
import json
import os
import subprocess
from pathlib import Path

from drivepi.engine.checkpoint_loading import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
MAX_FILES, MAX_BYTES = 8, 16 * 1024 * 1024


def run_job(tmp_path: Path, name: str, *options, cfg=()) -> str:
    """One train_mini.sh job at tiny sizes writing to ``tmp_path/name``; its output."""
    tiny = ['--preset', 'test', '--scenes', '2', '--recovery', '0', '--llm-size', '32', '1', '--data',
            tmp_path / 'data', '--eval-data', 'same', '--work-dir', tmp_path / f'work_{name}']
    cfg = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False', 'train_dataloader.pin_memory=False',
           'test_dataloader.num_workers=0',
           'test_dataloader.persistent_workers=False', 'model.token_filter.keep_ratio=0.1',
           'default_hooks.logger.interval=1', 'train_cfg.val_interval=1000', 'test_dataloader.dataset.indices=[0]',
           'model.heads.plan.num_modes=1', *cfg]  # the test preset's 6 keyframes have no complete future for anchors
    proc = subprocess.run(['bash', 'tools/gpu/train_mini.sh', tmp_path / name, *map(str, tiny + list(options)),
                           '--cfg-options', *cfg], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, f'train_mini.sh failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout


def returned_files(out_dir: Path) -> set:
    files = list(out_dir.iterdir())
    assert len(files) <= MAX_FILES and all(f.is_file() and f.stat().st_size <= MAX_BYTES for f in files)
    return {f.name for f in files}


def test_a_budgeted_job_and_a_chained_job_that_resumes_it(tmp_path):
    log1 = run_job(tmp_path, 'job1', '--budget-min', '0.05', '--eval', 'quick', cfg=['train_cfg.max_iters=200'])
    assert 'training budget is spent at iteration' in log1
    files = returned_files(tmp_path / 'job1')
    assert {'metrics_heldout.json', 'learning_curves.png', 'job.log'} <= files
    metrics = json.loads((tmp_path / 'job1' / 'metrics_heldout.json').read_text())
    assert 0 <= metrics['qa/accuracy'] <= 1 and 0 <= metrics['occ/RayIoU'] <= 100
    (ckpt,) = [tmp_path / 'job1' / f for f in files if f.endswith('.pth')]
    state = load_checkpoint_file(ckpt)
    stopped = state['meta']['iter']
    assert 0 < stopped < 200 and 'optimizer' in state     # stopped by the budget; the full training state

    log2 = run_job(tmp_path, 'job2', '--resume', ckpt, '--eval', 'none', cfg=[f'train_cfg.max_iters={stopped + 2}'])
    assert log2.count('reusing ') == 1                         # the data made by the first job
    assert f'resumed epoch: 0, iter: {stopped}' in log2
    assert f'Iter(train) [{stopped + 2}/{stopped + 2}]' in log2
    (ckpt2,) = [f for f in returned_files(tmp_path / 'job2') if f.endswith('.pth')]
    assert load_checkpoint_file(tmp_path / 'job2' / ckpt2)['meta']['iter'] == stopped + 2
