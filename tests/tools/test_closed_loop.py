"""tools/closed_loop.py end to end on the generated mini set: baselines table, outputs, resume."""
import json
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(monkeypatch, capsys, *args) -> str:
    """Run the tool in-process with ``args``; return its stdout."""
    monkeypatch.setattr(sys, 'argv', ['tools/closed_loop.py', *map(str, args)])
    runpy.run_path(str(REPO / 'tools' / 'closed_loop.py'), run_name='__main__')
    return capsys.readouterr().out


def test_cli_runs_baselines_writes_logs_and_resumes(mini_dataset, tmp_path, monkeypatch, capsys):
    config = tmp_path / 'closed_loop_mini.py'
    config.write_text(f"_base_ = ['{REPO / 'configs' / '_base_' / 'closed_loop.py'}']\n"
                      f"closed_loop = dict(data_root='{mini_dataset['root']}', info_file='{mini_dataset['val_info']}',"
                      " episodes='info_file', episode_seconds=2.0)\n")
    out = tmp_path / 'out'
    args = (config, '--planner', 'expert', '--planner', 'constant_velocity', '--out-dir', out,
            '--cfg-options', 'closed_loop.agents.mode=idm')
    stdout = run_cli(monkeypatch, capsys, *args)
    rows = {line.split('|')[0].strip(): line for line in stdout.splitlines() if '|' in line}
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
    run_cli(monkeypatch, capsys, *args)
    assert [p.stat().st_mtime_ns for p in logs] == stamps  # resumed: nothing rerun
    assert json.loads((out / 'closed_loop_metrics.json').read_text())['planners'] == summary['planners']
    with pytest.raises(SystemExit, match='needs CKPT'):
        run_cli(monkeypatch, capsys, config, '--planner', 'model', '--out-dir', out)
