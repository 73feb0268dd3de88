"""Bad inputs fail loudly: every case of issue 19 ("Correct by default") raises an error that names the
file or the key at fault, or gives the standard answer, instead of finishing with a wrong result.

One test per case, grouped by theme in titled sections.
"""
import json
import os
import pickle
import runpy
import shutil
import stat
import subprocess
import sys

import mmcv
import numpy as np
import pytest
from conftest import DEMO_INFO, REPO_ROOT

from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
from drivepi.datasets.file_checks import check_image_file
from drivepi.datasets.qa_schema import QAConversation, QARecord, QATurn, write_qa_file
from drivepi.registry import DATASETS, TRANSFORMS
from drivepi.sim.mini_dataset import generate_mini_dataset
from drivepi.utils import load_config, register_all_modules

register_all_modules()

# ---------------------------------------------------------------------------------------------------------
# Standard RayIoU, checked checkpoints, safe loading, errors that name the file
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# No silent zero, closed-loop settings checked first, atomic outputs, a clone without ../shared
# (items 4, 5, 6 and 9 of issue 19)
# ---------------------------------------------------------------------------------------------------------
def _qa_file(path, tokens) -> str:
    """A QA file with one yes/no conversation for each sample token."""
    turn = QATurn(question='Is the ego turning?', answer='no', type='yes_no')
    write_qa_file([QARecord(token, [QAConversation(id='c0', family='planning', turns=[turn])]) for token in tokens],
                  path)
    return str(path)


def _build_dataset(mini_dataset, qa_file, **kwargs):
    return DATASETS.build(dict(type='DrivePIDataset', data_root=f"{mini_dataset['root']}/",
                               ann_file=str(mini_dataset['val_info']), qa_file=qa_file, pipeline=[], test_mode=True,
                               **kwargs))


def test_qa_file_of_another_split_is_an_error_naming_both_files(mini_dataset, tmp_path):
    train_tokens = [info['token'] for info in pickle.loads(mini_dataset['train_info'].read_bytes())['data_list']]
    qa_file = _qa_file(tmp_path / 'qa_train.jsonl', train_tokens)
    with pytest.raises(ValueError, match=rf"none of the {len(train_tokens)} samples of the QA file {qa_file} is one "
                                         rf"of the \d+ samples of {mini_dataset['val_info']}"):
        _build_dataset(mini_dataset, qa_file)


def test_partial_qa_match_is_logged_with_its_fraction_on_a_subset_too(mini_dataset, tmp_path, mmengine_warnings):
    """QA for half the val samples plus one foreign sample: a warning with the fraction, counted over the whole
    info file even when ``indices`` takes a subset (as tools/test.py runs do)."""
    val_tokens = [info['token'] for info in pickle.loads(mini_dataset['val_info'].read_bytes())['data_list']]
    half = len(val_tokens) // 2
    qa_file = _qa_file(tmp_path / 'qa_half.jsonl', val_tokens[:half] + ['not-a-val-sample'])
    dataset = _build_dataset(mini_dataset, qa_file, indices=1)
    assert len(dataset) == 1 and len(dataset.get_data_info(0)['conversations']) == 1
    assert mmengine_warnings == [
        f"{half} of the {len(val_tokens)} samples of {mini_dataset['val_info']} ({100 * half / len(val_tokens):.1f} %) "
        f'have QA in {qa_file}; 1 of its {half + 1} samples are not in the info file']


def test_corrupt_jpeg_with_end_marker_is_an_error_naming_the_file(tmp_path):
    """A JPEG written by OpenCV (the library that decodes it) whose entropy-coded data is overwritten in the
    middle with restart markers: the end marker is intact, libjpeg only warns, the loader must fail."""
    image = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    path = tmp_path / 'CAM_FRONT.jpg'
    mmcv.imwrite(image, str(path))
    data = bytearray(path.read_bytes())
    scan_start, scan_end = data.index(b'\xff\xda') + 12, len(data) - 2  # after the SOS header, before EOI
    middle = (scan_start + scan_end) // 2
    data[middle:middle + 40] = b'\xff\xd0' * 20
    path.write_bytes(bytes(data))
    assert check_image_file(path) == path  # the end marker is intact: the cheap check passes
    load = TRANSFORMS.build(dict(type='DrivePILoadMultiViewImageFromFiles', cam_names=['CAM_FRONT']))
    with pytest.raises(ValueError, match=rf'camera image {path} is corrupt: the decoder reports "Corrupt JPEG data'):
        load(dict(images=dict(CAM_FRONT=dict(img_path=str(path), cam2img=np.eye(3), cam2ego=np.eye(4)))))


def test_config_typo_is_rejected_with_the_nearest_key(tmp_path):
    base = f"_base_ = ['{REPO_ROOT / 'configs' / 'drivepi' / 'drivepi_mini.py'}']\nmy_helper_size = 3\n"
    (tmp_path / 'helper.py').write_text(base)
    assert load_config(str(tmp_path / 'helper.py')).my_helper_size == 3  # a helper variable is fine
    config = tmp_path / 'typo.py'
    config.write_text(base + 'trian_dataloader = dict(batch_size=2)\n')
    with pytest.raises(ValueError, match=rf"{config}: unknown top-level key 'trian_dataloader' \(did you mean "
                                         r"'train_dataloader'\?\)"):
        load_config(str(config))


CLOSED_LOOP_CASES = {
    'nan speed bound': ('closed_loop.max_plan_speed=nan',
                        'closed_loop.max_plan_speed must be a finite number, got nan'),
    'zero rate': ('closed_loop.sim_hz=0', 'closed_loop.sim_hz must be positive, got 0'),
    'scenes string': ('closed_loop.scenes=scene-0001', "closed_loop.scenes must be None or a list of scene names, got "
                      "'scene-0001' (--cfg-options \"closed_loop.scenes=[scene-0001]\")"),
    'unknown key': ('closed_loop.max_plan_sped=30', "unknown key closed_loop.max_plan_sped (did you mean "
                    "'max_plan_speed'?)"),
    'unknown nested key': ('closed_loop.vehicle.wheel_base=2.5', "unknown key closed_loop.vehicle.wheel_base (did you "
                           "mean 'wheelbase'?)"),
}


@pytest.mark.parametrize('option, message', CLOSED_LOOP_CASES.values(), ids=CLOSED_LOOP_CASES)
def test_closed_loop_settings_are_checked_before_any_episode(option, message, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    monkeypatch.setattr(sys, 'argv', ['tools/closed_loop.py', str(REPO_ROOT / 'configs' / '_base_' / 'closed_loop.py'),
                                      '--planner', 'expert', '--out-dir', str(out), '--cfg-options', option])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / 'tools' / 'closed_loop.py'), run_name='__main__')
    assert str(exit_info.value) == message
    assert not out.exists()


def test_create_data_writes_no_split_when_a_later_split_fails(mini_dataset, tmp_path):
    """The val split fails after the train infos are built (a val camera file is missing): no info file."""
    root, version = tmp_path / 'root', mini_dataset['version']
    root.mkdir()
    for entry in mini_dataset['root'].iterdir():
        if entry.name != version and entry.suffix != '.pkl':
            (root / entry.name).symlink_to(entry)
    shutil.copytree(mini_dataset['root'] / version, root / version)
    val_scene = json.loads((root / 'splits.json').read_text())['val'][0]
    records = json.loads((root / version / 'sample_data.json').read_text())
    broken = next(r for r in records if r['filename'].startswith(f'samples/CAM_FRONT/{val_scene}__'))
    broken['filename'] = 'samples/CAM_FRONT/missing.jpg'
    (root / version / 'sample_data.json').write_text(json.dumps(records))
    with pytest.raises(FileNotFoundError, match=f'camera image not found: {root}/samples/CAM_FRONT/missing.jpg'):
        create_drivepi_infos(root, tmp_path / 'infos', version)
    assert not (tmp_path / 'infos').exists() or not list((tmp_path / 'infos').iterdir())


def test_one_scene_set_is_refused_and_writes_no_info_file(tmp_path):
    """docs/mini_dataset.md: a one-scene set is all train; tools/create_data.py needs a scene in every split."""
    version = generate_mini_dataset(tmp_path, num_scenes=1, seed=0, preset='test')
    assert json.loads((tmp_path / 'splits.json').read_text())['val'] == []
    with pytest.raises(ValueError, match=rf'no scene of the val split \(0 listed\) is in {tmp_path / version}'):
        create_drivepi_infos(tmp_path, tmp_path, version)
    assert not list(tmp_path.glob('*.pkl'))


def test_failed_test_run_leaves_the_old_outputs_untouched(tmp_path):
    """tools/test.py --out-dir: a run writes into a fresh folder that replaces DIR only when it succeeds."""
    fresh_output_dir = runpy.run_path(str(REPO_ROOT / 'tools' / 'test.py'))['fresh_output_dir']
    out = tmp_path / 'results'
    (out / 'predictions').mkdir(parents=True)
    (out / 'predictions' / 'old.npz').write_bytes(b'old')
    (out / 'metrics.json').write_text('{"occ/RayIoU": 1.0}')
    with pytest.raises(RuntimeError, match='interrupted'), fresh_output_dir(out) as staging:
        (staging / 'predictions').mkdir()
        (staging / 'predictions' / 'new.npz').write_bytes(b'new')
        raise RuntimeError('interrupted')
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*')) == [
        'results', 'results/metrics.json', 'results/predictions', 'results/predictions/old.npz']
    with fresh_output_dir(out) as staging:
        (staging / 'predictions').mkdir()
        (staging / 'predictions' / 'new.npz').write_bytes(b'new')
        (staging / 'metrics.json').write_text('{"occ/RayIoU": 2.0}')
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*')) == [
        'results', 'results/metrics.json', 'results/predictions', 'results/predictions/new.npz']
    assert json.loads((out / 'metrics.json').read_text()) == {'occ/RayIoU': 2.0}


@pytest.mark.parametrize('umask', [0o022, 0o002])
def test_qa_file_gets_the_umask_permissions(umask, tmp_path):
    previous = os.umask(umask)
    try:
        _qa_file(tmp_path / 'qa.jsonl', ['s1'])
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / 'qa.jsonl').stat().st_mode) == 0o666 & ~umask


def _run_a_keyframe_test(demo_folder, **extra_env) -> subprocess.CompletedProcess:
    """pytest on one test that reads the real keyframe, with DRIVEPI_NUSCENES_DEMO=``demo_folder``."""
    env = {k: v for k, v in os.environ.items() if k != 'DRIVEPI_REQUIRE_NUSCENES_DEMO'}
    env.update(DRIVEPI_NUSCENES_DEMO=str(demo_folder), **extra_env)
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider',
                           'tests/sim/test_calibration.py::test_lidar2ego_matches_nuscenes'],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True)


def test_missing_keyframe_skips_with_where_it_comes_from_and_fails_in_ci(tmp_path):
    skipped = _run_a_keyframe_test(tmp_path / 'absent')
    assert skipped.returncode == 0 and '1 skipped' in skipped.stdout, skipped.stdout
    assert f"no {tmp_path / 'absent' / DEMO_INFO}" in skipped.stdout
    assert 'tools/extract_nuscenes_keyframe.py' in skipped.stdout and 'DRIVEPI_NUSCENES_DEMO' in skipped.stdout
    required = _run_a_keyframe_test(tmp_path / 'absent', DRIVEPI_REQUIRE_NUSCENES_DEMO='1')
    assert required.returncode != 0 and '1 error' in required.stdout, required.stdout


@pytest.mark.filterwarnings('ignore:img_intersection is not an object of Polygon')  # mmdet3d: a box outside a view
def test_extract_keyframe_agrees_with_the_project_converter(mini_dataset, tmp_path):
    """tools/extract_nuscenes_keyframe.py (mmdet3d's converters) on the generated set: the same files, the
    calibration of the project's converter (tools/create_data.py), and its boxes with z at the gravity centre
    instead of the bottom."""
    ours = pickle.loads(mini_dataset['val_info'].read_bytes())['data_list'][1]
    extract = runpy.run_path(str(REPO_ROOT / 'tools' / 'extract_nuscenes_keyframe.py'))['extract_keyframe']
    info_path = extract(mini_dataset['root'], tmp_path / 'keyframe', mini_dataset['version'], ours['token'])
    assert info_path == tmp_path / 'keyframe' / f"drivepi-{ours['scene_name']}.pkl"
    data = pickle.loads(info_path.read_bytes())
    assert data['metainfo']['info_version'] == '1.1' and len(data['data_list']) == 1
    info = data['data_list'][0]
    assert set(info) == {'sample_idx', 'token', 'timestamp', 'ego2global', 'images', 'lidar_points', 'instances',
                         'cam_instances'}
    names = [info['lidar_points']['lidar_path']] + [cam['img_path'] for cam in info['images'].values()]
    assert sorted(p.name for p in (tmp_path / 'keyframe').iterdir()) == sorted(names + [info_path.name])
    assert (tmp_path / 'keyframe' / names[0]).read_bytes() == \
        (mini_dataset['root'] / 'samples' / 'LIDAR_TOP' / ours['lidar_points']['lidar_path']).read_bytes()
    np.testing.assert_allclose(info['ego2global'], ours['ego2global'], atol=1e-9)
    np.testing.assert_allclose(info['lidar_points']['lidar2ego'], ours['lidar_points']['lidar2ego'], atol=1e-9)
    for cam, image in info['images'].items():
        assert image['img_path'] == ours['images'][cam]['img_path']
        for key in ('cam2img', 'cam2ego', 'lidar2cam'):
            np.testing.assert_allclose(image[key], ours['images'][cam][key], atol=1e-6)
    boxes = np.array([inst['bbox_3d'] for inst in info['instances']])
    expected = np.array([inst['bbox_3d'] for inst in ours['instances']])
    expected[:, 2] += expected[:, 5] / 2  # bottom centre -> gravity centre
    np.testing.assert_allclose(boxes[:, :6], expected[:, :6], atol=1e-6)
    # yaw: mmdet3d's of the box rotated into the tilted LiDAR frame, ours of its heading turned about z
    assert np.abs(np.angle(np.exp(1j * (boxes[:, 6] - expected[:, 6])))).max() < 1e-3
    for key in ('bbox_label_3d', 'num_lidar_pts', 'bbox_3d_isvalid'):
        assert [inst[key] for inst in info['instances']] == [inst[key] for inst in ours['instances']]
    # velocity: mmdet3d drops the vertical component before rotating into the LiDAR frame, we after
    np.testing.assert_allclose([inst['velocity'] for inst in info['instances']],
                               [inst['velocity'] for inst in ours['instances']], atol=0.01)
