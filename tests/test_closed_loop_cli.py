"""tools/closed_loop.py end to end on the generated mini set: baselines table, outputs, resume."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'closed_loop.py'), *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_cli_runs_baselines_writes_logs_and_resumes(mini_dataset, tmp_path):
    config = tmp_path / 'closed_loop_mini.py'
    config.write_text(f"_base_ = ['{REPO / 'configs' / '_base_' / 'closed_loop.py'}']\n"
                      f"closed_loop = dict(data_root='{mini_dataset['root']}', info_file='{mini_dataset['val_info']}',"
                      " episode_seconds=2.0)\n")
    out = tmp_path / 'out'
    first = run_cli(config, '--planner', 'expert', '--planner', 'constant_velocity', '--out-dir', out,
                    '--cfg-options', 'closed_loop.agents.mode=idm')
    assert first.returncode == 0, first.stderr
    rows = {line.split('|')[0].strip(): line for line in first.stdout.splitlines() if '|' in line}
    assert {'planner', 'expert', 'constant_velocity'} <= set(rows)
    summary = json.loads((out / 'closed_loop_metrics.json').read_text())
    assert summary['agents_mode'] == 'idm' and summary['setting'] == ['mini_world']
    scenes = sorted(summary['episodes']['expert'])
    assert summary['planners']['expert']['num_episodes'] == len(scenes) >= 1
    assert summary['planners']['expert']['nc'] == 1.0 and summary['planners']['expert']['dac'] == 1.0
    logs = sorted((out / 'episodes').glob('*/*.json'))
    assert [p.stem for p in logs] == scenes * 2
    log = json.loads(logs[0].read_text())
    assert len(log['times']) == 21 and len(log['ego']) == 21 and len(log['plans']) == 4  # 2 s, 10 Hz, 2 Hz
    stamps = [p.stat().st_mtime_ns for p in logs]
    second = run_cli(config, '--planner', 'expert', '--planner', 'constant_velocity', '--out-dir', out,
                     '--cfg-options', 'closed_loop.agents.mode=idm')
    assert second.returncode == 0, second.stderr
    assert [p.stat().st_mtime_ns for p in logs] == stamps  # resumed: nothing rerun
    assert json.loads((out / 'closed_loop_metrics.json').read_text())['planners'] == summary['planners']
    no_ckpt = run_cli(config, '--planner', 'model', '--out-dir', out)
    assert no_ckpt.returncode != 0 and 'needs CKPT' in no_ckpt.stderr
