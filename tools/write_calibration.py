"""Write the drivepi-calibration/1 JSON of an info-file entry, for tools/infer.py on that sample's raw files.

    python tools/write_calibration.py INFO.pkl OUT.json [--token TOKEN]

Works on DrivePI info files and on plain mmdet3d v2 nuScenes infos (then without command and ego status).
The format is documented in drivepi/apis/calibration.py.
"""
import argparse

from drivepi.apis import write_calibration
from drivepi.visualization.sample_io import find_sample, load_infos


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('info', help='info file (*.pkl)')
    parser.add_argument('out', help='calibration JSON to write')
    parser.add_argument('--token', help='sample token (default: the first sample)')
    args = parser.parse_args(argv)
    info = find_sample(load_infos(args.info), args.token, args.info)
    print(f"wrote {write_calibration(info, args.out)} (sample {info['token']})")


if __name__ == '__main__':
    main()
