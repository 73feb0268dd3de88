"""Extract the real nuScenes keyframe folder that the tests read, from a local nuScenes v1.0-mini.

    python tools/extract_nuscenes_keyframe.py --nuscenes-root data/nuscenes --out-dir ../shared/data/nuscenes_demo

The tests read ``../shared/data/nuscenes_demo`` beside the checkout, or the folder that the environment
variable ``DRIVEPI_NUSCENES_DEMO`` names (tests/conftest.py).

The folder holds one keyframe (default: sample ``ca9a282c9e77460f8360f564131a8af5`` of the scene log
n015-2018-07-24-11-22-45+0800, the keyframe mmdetection3d ships as ``demo/data/nuscenes``): its six camera
JPEGs and its LIDAR_TOP sweep under their nuScenes file names, and ``<log>.pkl``, its mmdet3d v2 info
(``instances`` with the box gravity centre, ``cam_instances``, no sweeps) made by mmdet3d's own converters,
``tools/dataset_converters/nuscenes_converter.py`` then ``update_infos_to_v2.py`` (installed with mmdet3d
under ``mmdet3d/.mim``). The folder appears only when complete. nuScenes is CC BY-NC-SA 4.0 (non-commercial).
"""
import argparse
import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

import mmdet3d
import mmengine
from nuscenes import NuScenes

from drivepi.datasets.converters.nuscenes_converter import load_nuscenes
from drivepi.fileio import atomic_directory
from drivepi.geometry import CAMERA_NAMES

DEMO_SAMPLE_TOKEN = 'ca9a282c9e77460f8360f564131a8af5'
MMDET3D_CONVERTERS = Path(mmdet3d.__file__).parent / '.mim' / 'tools' / 'dataset_converters'
CHANNELS = (*CAMERA_NAMES, 'LIDAR_TOP')


def mmdet3d_converter(name: str) -> ModuleType:
    """The module ``tools/dataset_converters/<name>.py`` of the installed mmdet3d."""
    spec = importlib.util.spec_from_file_location(f'mmdet3d_converters_{name}', MMDET3D_CONVERTERS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OneSample:
    """A loaded ``NuScenes`` whose ``sample`` table lists one sample only (what mmdet3d's converter iterates);
    every lookup still goes to the whole database."""

    def __init__(self, nusc: NuScenes, sample_token: str):
        self.nusc = nusc
        self.sample = [nusc.get('sample', sample_token)]

    def __getattr__(self, name: str):
        return getattr(self.nusc, name)


def mmdet3d_info(nusc: NuScenes, sample_token: str, pkl_name: str, work_dir: Path) -> Path:
    """Write ``<work_dir>/v2/<pkl_name>``: the mmdet3d v2 info file of one keyframe, without sweeps.

    mmdet3d's v2 update reloads the database from ``./data/nuscenes`` of the working directory, so it runs in
    ``work_dir`` with that path linked to the data root.
    """
    sample = nusc.get('sample', sample_token)
    infos, _ = mmdet3d_converter('nuscenes_converter')._fill_trainval_infos(
        OneSample(nusc, sample_token), {sample['scene_token']}, set(), test=False, max_sweeps=0)
    v1_path = work_dir / 'v1' / pkl_name
    v1_path.parent.mkdir()
    mmengine.dump(dict(infos=infos, metadata=dict(version=nusc.version)), v1_path)
    (work_dir / 'data').mkdir()
    (work_dir / 'data' / 'nuscenes').symlink_to(Path(nusc.dataroot).resolve())
    (work_dir / 'v2').mkdir()
    with contextlib.chdir(work_dir):
        mmdet3d_converter('update_infos_to_v2').update_nuscenes_infos(str(v1_path), str(work_dir / 'v2'))
    return work_dir / 'v2' / pkl_name


def extract_keyframe(nuscenes_root, out_dir, version: str = 'v1.0-mini', sample_token: str = DEMO_SAMPLE_TOKEN,
                     overwrite: bool = False) -> Path:
    """Write the keyframe folder (module docstring) of ``sample_token`` to ``out_dir``; returns the info path.

    Args:
        nuscenes_root: data root that ``NuScenes(version, dataroot=nuscenes_root)`` loads.
        out_dir: folder to write (must be absent or empty unless ``overwrite``).
        version: nuScenes version of the tables.
        sample_token: the keyframe.
    """
    nusc = load_nuscenes(nuscenes_root, version)
    sample = nusc.get('sample', sample_token)
    log = nusc.get('log', nusc.get('scene', sample['scene_token'])['log_token'])
    pkl_name = f"{log['logfile']}.pkl"
    with atomic_directory(out_dir, overwrite) as tmp, tempfile.TemporaryDirectory() as work_dir:
        shutil.copyfile(mmdet3d_info(nusc, sample_token, pkl_name, Path(work_dir)), tmp / pkl_name)
        for channel in CHANNELS:
            filename = nusc.get('sample_data', sample['data'][channel])['filename']
            shutil.copyfile(Path(nuscenes_root) / filename, tmp / os.path.basename(filename))
    return Path(out_dir) / pkl_name


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nuscenes-root', required=True, help='nuScenes data root (holding v1.0-mini/, samples/)')
    parser.add_argument('--out-dir', required=True, help='keyframe folder to write')
    parser.add_argument('--version', default='v1.0-mini', help='nuScenes version (table folder)')
    parser.add_argument('--sample-token', default=DEMO_SAMPLE_TOKEN, help='the keyframe (default: the demo one)')
    parser.add_argument('--overwrite', action='store_true', help='replace a non-empty --out-dir')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    info = extract_keyframe(args.nuscenes_root, args.out_dir, args.version, args.sample_token, args.overwrite)
    print(f'keyframe written to {args.out_dir} (info {info}); tests read it with DRIVEPI_NUSCENES_DEMO={args.out_dir}')


if __name__ == '__main__':
    main()
