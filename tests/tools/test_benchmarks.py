"""The GPU benchmark scripts run end to end on CPU with the mini model (the GPU figures come from the
same code paths: see docs/benchmarks.md)."""
import json
import math
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def run_tool(*args: str) -> None:
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_benchmark_trains_deploys_and_reports_every_section(tmp_path, tiny_llm_dir, demo_dir):
    out = tmp_path / 'bench.json'
    run_tool('tools/benchmark.py', 'configs/drivepi/drivepi_mini.py', '--device', 'cpu', '--demo-dir', str(demo_dir),
             '--iters', '1', '--warmup', '0', '--num-sweeps', '2', '--img-size', '64', '176', '--train-batch', '1',
             '--filter-settings', '0.25/0.4,0.7,1', '0.5/1,1,1', '--decode-tokens', '3',
             '--profile', '--out', str(out),
             '--tokenizer', str(tiny_llm_dir),
             '--cfg-options', f'model.llm.llm_path={tiny_llm_dir}', 'model.llm.train_mode=lora')
    report = json.loads(out.read_text())
    for section in ('training', 'inference', 'filter_sweep', 'ada3d', 'decode'):
        assert 'error' not in report[section], (section, report[section])
    assert report['training']['samples_per_s'] > 0 and report['training']['optim_wrapper'] == 'GuardedOptimWrapper'
    assert report['training']['trainable_params_m'] > 0
    inference = report['inference']
    assert inference['latency_ms'] > 0 and inference['gflops'] > 0
    assert 0 < inference['num_kept_voxels'] < inference['num_voxels']  # the Ada3D filter ran
    assert set(inference['module_ms']) >= {'lidar_branch', 'camera_branch', 'llm.causal_lm.model', 'heads.occ'}
    assert report['ada3d']['num_voxels'] == inference['num_voxels']
    default, unfiltered = report['filter_sweep']['0.25/0.4,0.7,1'], report['filter_sweep']['0.5/1,1,1']
    assert default['tokens'] == 625 and unfiltered['tokens'] == 1250  # a quarter / half of the 50 x 50 mini BEV
    assert default['num_kept_voxels'] == inference['num_kept_voxels']  # the config's own ratios
    assert unfiltered['num_kept_voxels'] == unfiltered['num_voxels'] == inference['num_voxels']
    decode = report['decode']
    # a timing, not asserted positive: on a loaded 2-core machine the per-token difference can be noise
    assert decode['prefix_tokens'] > 625 + 6 and math.isfinite(decode['decode_ms_per_token'])
    assert decode['configured_variant'] == 'compiled'  # the configs' default
    for variant in ('compiled', 'coordinate_descent', 'max_autotune', 'no_compile', 'no_cuda_graphs'):
        # on a CPU every variant decodes eagerly
        low, high = decode[f'decode_ms_per_token_{variant}_range']
        assert low <= decode[f'decode_ms_per_token_{variant}'] <= high
    low, high = report['training']['step_ms_range']
    assert low <= report['training']['step_ms'] <= high
    for name in ('training', 'inference'):
        table = (tmp_path / f'bench_profile_{name}.txt').read_text()
        assert 'aten::' in table and 'sorted by cpu_time_total' in table
        ours = table.split('# our functions by host time per run')[1].splitlines()[1:]
        assert ours and all('drivepi/' in line for line in ours)  # host time attributed to our functions
        inclusive, own = (float(v) for v in ours[0].split()[:2])
        assert inclusive >= own >= 0 and inclusive == max(float(line.split()[0]) for line in ours)


@pytest.mark.parametrize('predictor', ['VoxelImportancePredictor', 'BEVImportancePredictor'])
def test_benchmark_lidar_reports_filter_on_and_off(tmp_path, demo_dir, predictor):
    out = tmp_path / 'lidar.json'
    run_tool('tools/benchmark_lidar.py', 'configs/_base_/models/drivepi_mini.py', '--device', 'cpu',
             '--demo-dir', str(demo_dir), '--num-sweeps', '1', '--iters', '1', '--warmup', '0', '--out', str(out),
             '--cfg-options', f'model.lidar_branch.importance_predictor.type={predictor}')
    on, off = json.loads(out.read_text())['results']
    assert on['filter'] and not off['filter'] and on['num_voxels'] == off['num_voxels'] == off['num_kept_voxels']
    assert 0 < on['num_kept_voxels'] < on['num_voxels']
    # the first encoder layers see exactly the kept voxels; downsampling can only merge them
    assert on['encoder_layer_voxels'][0] == on['num_kept_voxels']
    assert off['encoder_layer_voxels'][0] == off['num_voxels']
    assert all(a >= b for a, b in zip(off['encoder_layer_voxels'], on['encoder_layer_voxels']))
    assert set(on['stage_ms_median']) == {'voxelizer', 'importance_predictor', 'voxel_filter', 'backbone'}
    assert on['train_ms_median'] > 0 and off['train_ms_median'] > 0  # the training pass ran for both


def test_pack_eval_subset_carries_every_file_of_its_samples(tmp_path, mini_dataset):
    import pickle
    root = mini_dataset['root']
    for name in ('qa_val.jsonl', 'qa_train.jsonl'):  # the pack carries the QA files beside the infos
        (root / name).write_text('{}\n')
    out = tmp_path / 'pack'
    run_tool('tools/gpu/pack_eval_subset.py', str(root), str(out), '--num-samples', '3', '--num-sweeps', '1')
    packed = pickle.loads((out / 'drivepi_infos_val.pkl').read_bytes())
    original = pickle.loads(mini_dataset['val_info'].read_bytes())
    assert packed['metainfo'] == original['metainfo']
    expected = [dict(info, lidar_sweeps=info['lidar_sweeps'][:1]) for info in original['data_list'][:3]]
    assert pickle.dumps(packed['data_list']) == pickle.dumps(expected)  # only the sweeps the configs load (NaN-safe)
    wanted = []
    for info in packed['data_list']:
        wanted += [f"samples/LIDAR_TOP/{info['lidar_points']['lidar_path']}", info['occ_path']]
        wanted += [f'samples/{cam}/{img["img_path"]}' for cam, img in info['images'].items()]
        wanted += [s['lidar_points']['lidar_path'] for s in info['lidar_sweeps']]
    assert any(info['lidar_sweeps'] for info in packed['data_list'])
    for rel in wanted:
        assert (out / rel).read_bytes() == (root / rel).read_bytes(), rel
    assert any(len(info['lidar_sweeps']) > 1 for info in original['data_list'][:3])  # so the trimming was tested
    assert {p.name for p in out.iterdir()} >= {'qa_val.jsonl', 'qa_train.jsonl', 'samples'}


def test_benchmark_decode_agreement_and_attention_sections(tmp_path, tiny_llm_dir, demo_dir):
    """The compiled-vs-eager decoding section on the CPU, with torch.compile disabled (the CUDA test of
    ``GreedyDecoder.forced_logits`` covers the compiled step): both steps are the same function, so no token
    differs, the logit difference is exactly 0, and every question's answer is counted. The attention section
    times the prompt's LLM pass with each backend the CPU has and names those it has not."""
    out = tmp_path / 'sections.json'
    result = subprocess.run(
        [sys.executable, 'tools/benchmark.py', 'configs/drivepi/drivepi_mini.py', '--device', 'cpu', '--demo-dir',
         str(demo_dir), '--num-sweeps', '1', '--img-size', '64', '176', '--decode-tokens', '5', '--sections',
         'attention', 'decode_agreement', '--out', str(out), '--tokenizer', str(tiny_llm_dir), '--cfg-options',
         f'model.llm.llm_path={tiny_llm_dir}'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, TORCH_COMPILE_DISABLE='1'))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    attention = json.loads(out.read_text())['attention']
    assert attention['prefix_tokens'] > 10 and attention['default_ms'] > 0 and attention['math_ms'] > 0
    assert attention['cudnn_ms'] is None and attention['cudnn_error']  # a CUDA-only kernel
    assert 'math attention only' in result.stdout
    report = json.loads(out.read_text())['decode_agreement']
    assert report['tokens'] == 4 * 5 and report['disagreements'] == [] and report['max_logit_diff'] == 0
    assert 0 <= report['min_margin'] <= report['median_margin'] and report['all_disagreements_near_ties']
    assert 'compiled vs eager decoding: tokens differing / compared | 0 / 20' in result.stdout
