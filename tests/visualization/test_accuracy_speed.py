"""Accuracy-vs-speed table and Pareto plot of the redundancy filters (tools/accuracy_speed.py)."""
import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from drivepi.benchmarking import FILTER_SETTINGS, parse_filter_setting
from drivepi.visualization.accuracy_speed import join_rows, markdown_table, pareto_front, setting_dir_name


def test_filter_settings_parse_and_name_their_folders():
    assert parse_filter_setting('0.25/0.4,0.7,1') == (0.25, [0.4, 0.7, 1.0])
    assert setting_dir_name('0.25/0.4,0.7,1') == 'token0.25_voxel0.4-0.7-1'
    assert len({setting_dir_name(s) for s in FILTER_SETTINGS}) == len(FILTER_SETTINGS)
    assert '1/1,1,1' in FILTER_SETTINGS  # the unfiltered reference
    with pytest.raises(ValueError, match="is not 'TOKEN_RATIO/V1,V2,V3'"):
        parse_filter_setting('0.25')


def test_pareto_front_hand_computed():
    points = [(10, 40.0), (20, 45.0), (15, 38.0), (30, 45.0), (25, 50.0)]
    # (15, 38) is beaten by (10, 40); (30, 45) by (20, 45) and (25, 50)
    assert pareto_front(points, higher_is_better=True) == [(10, 40.0), (20, 45.0), (25, 50.0)]
    errors = [(10, 1.2), (20, 1.0), (30, 1.1)]
    assert pareto_front(errors, higher_is_better=False) == [(10, 1.2), (20, 1.0)]


def test_rows_join_gpu_latency_and_metrics_by_setting():
    latency = {'0.25/0.4,0.7,1': dict(latency_ms=21.0, lidar_ms=6.0, tokens=2500, num_voxels=200, num_kept_voxels=150)}
    metrics = {'0.25/0.4,0.7,1': {'occ/RayIoU': 47.0, 'qa/accuracy': 45.0}, '1/1,1,1': {'occ/RayIoU': 46.5}}
    rows = join_rows(['0.25/0.4,0.7,1', '1/1,1,1'], metrics, latency)
    assert rows[0]['latency_ms'] == 21.0 and rows[0]['voxel_kept_share'] == 0.75 and rows[0]['qa/accuracy'] == 45.0
    assert rows[1]['latency_ms'] is None and rows[1]['occ/RayIoU'] == 46.5 and rows[1]['qa/accuracy'] is None
    table = markdown_table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith('| 0.25 | 0.4, 0.7, 1 | 2500 | 75 % | 21.0 | 6.0 | 47.0 |')
    assert table[3].startswith('| 1 | 1, 1, 1 | - | - % | - | - | 46.5 |')


def test_report_writes_table_json_and_plot(tmp_path):
    settings = ['0.1/0.4,0.7,1', '0.25/0.4,0.7,1', '1/1,1,1']
    for i, setting in enumerate(settings):
        folder = tmp_path / 'eval' / setting_dir_name(setting)
        folder.mkdir(parents=True)
        (folder / 'metrics.json').write_text(json.dumps({'occ/RayIoU': 40.0 + i, 'occ/mAVE': 0.6 - 0.01 * i,
                                                         'plan/L2@avg/per_step': 1.1, 'qa/accuracy': 44.0 + i}))
    sweep = {s: dict(latency_ms=20.0 + 10 * i, lidar_ms=6.0, tokens=100 * (i + 1), num_voxels=10, num_kept_voxels=5)
             for i, s in enumerate(settings)}
    (tmp_path / 'bench.json').write_text(json.dumps(dict(filter_sweep=sweep)))
    out = tmp_path / 'acc_speed.png'
    result = subprocess.run([sys.executable, 'tools/accuracy_speed.py', 'report', '--eval-dir', str(tmp_path / 'eval'),
                             '--benchmark', str(tmp_path / 'bench.json'), '--out', str(out), '--settings', *settings],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10_000
    rows = json.loads(out.with_suffix('.json').read_text())
    assert [r['setting'] for r in rows] == settings and rows[2]['latency_ms'] == 40.0 and rows[2]['qa/accuracy'] == 46.0
    assert '| 1 | 1, 1, 1 | 300 | 50 % | 40.0 |' in result.stdout
