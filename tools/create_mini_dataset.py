"""Generate the DrivePI mini dataset (nuScenes format, ray-cast sensors, OpenOcc occupancy GT).

    python tools/create_mini_dataset.py --out-dir data/drivepi-mini
    python tools/create_data.py nuscenes --root-path data/drivepi-mini --out-dir data/drivepi-mini \
        --version v1.0-drivepi-mini

``--recovery-per-keyframe N`` adds N recovery samples (ego displaced off the expert's path, train split
only) per eligible train keyframe; ``--ray-backend torch`` casts the sensors with torch (CUDA where available)
instead of Embree (open3d); see docs/mini_dataset.md.
"""
import argparse

from drivepi.sim.mini_dataset import PRESETS, generate_mini_dataset
from drivepi.sim.ray_backends import RAY_BACKENDS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default='data/drivepi-mini', help='data root to write')
    parser.add_argument('--num-scenes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--preset', default='default', choices=sorted(PRESETS))
    parser.add_argument('--workers', type=int, default=None, help="processes (default: the preset's)")
    parser.add_argument('--recovery-per-keyframe', type=int, default=None,
                        help="recovery samples per eligible train keyframe (default: the preset's, 0 = none)")
    parser.add_argument('--ray-backend', default='auto', choices=RAY_BACKENDS,
                        help='sensor ray casting: Embree (open3d) or torch (CUDA where available); '
                             'auto: Embree where open3d imports')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    version = generate_mini_dataset(args.out_dir, args.num_scenes, args.seed, args.preset, workers=args.workers,
                                    recovery_per_keyframe=args.recovery_per_keyframe, ray_backend=args.ray_backend)
    print(f'\nwrote {version} ({args.num_scenes} scenes, preset {args.preset!r}) to {args.out_dir}')


if __name__ == '__main__':
    main()
