"""Ask a DrivePI checkpoint about a scene of your own: prints the answers, saves the predictions and a picture.

Raw files (a LiDAR sweep, optional earlier sweeps, six camera images and a calibration JSON in the
``drivepi-calibration/1`` format of drivepi/apis/calibration.py; tools/write_calibration.py writes one from an
info entry)::

    python tools/infer.py CONFIG CKPT --lidar LIDAR.pcd.bin [--sweeps SWEEP.pcd.bin ...] \
        --cams CAM_FRONT=front.jpg CAM_FRONT_RIGHT=... (all six) --calib calib.json \
        --question "Are there any cars?" [--question ...] [--out-dir DIR] [--device cpu] [--cfg-options k=v ...]

An entry of a DrivePI info file instead (``--qa-file`` adds that sample's conversations, whose ground-truth
answers the picture then marks correct or wrong)::

    python tools/infer.py CONFIG CKPT --info INFO.pkl [--token TOKEN] [--data-root DIR] [--qa-file QA.jsonl]

Writes ``DIR/predictions/<token>.npz`` (as ``tools/test.py --out-dir``) and ``DIR/pictures/<token>.png``.
"""
import argparse

from mmengine.config import DictAction

from drivepi.apis import DrivePIInferencer
from drivepi.datasets.qa_schema import load_qa_file
from drivepi.engine.checkpoint_loading import ALLOW_PARTIAL_HELP
from drivepi.evaluation.qa_accuracy import format_waypoints
from drivepi.geometry import COMMANDS
from drivepi.utils import load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file (its test pipeline preprocesses the inputs)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--lidar', help='keyframe LiDAR file (.bin / .pcd.bin)')
    parser.add_argument('--sweeps', nargs='*', default=[], help='earlier LiDAR sweeps, in the calibration order')
    parser.add_argument('--cams', nargs='+', help='six images as NAME=PATH, or six paths in the order CAM_FRONT, '
                        'CAM_FRONT_RIGHT, CAM_FRONT_LEFT, CAM_BACK, CAM_BACK_LEFT, CAM_BACK_RIGHT')
    parser.add_argument('--calib', help='drivepi-calibration/1 JSON')
    parser.add_argument('--info', help='DrivePI info file (instead of raw files)')
    parser.add_argument('--token', help='sample of --info (default: its first)')
    parser.add_argument('--data-root', help="root of --info's relative paths (default: the config's)")
    parser.add_argument('--qa-file', help="QA file whose conversations of the --info sample are asked too")
    parser.add_argument('--question', action='append', default=[], help='a question (repeatable)')
    parser.add_argument('--out-dir', default='work_dirs/infer', help='where predictions/ and pictures/ go')
    parser.add_argument('--device', help='cpu, cuda, ... (default: the available accelerator)')
    parser.add_argument('--allow-partial', action='store_true', help=ALLOW_PARTIAL_HELP)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.llm.llm_path=DIR')
    args = parser.parse_args(argv)
    if bool(args.info) == bool(args.lidar and args.cams and args.calib):
        parser.error('give either --lidar, --cams and --calib (raw files) or --info')
    return args


def model_input(args: argparse.Namespace) -> dict:
    """The inferencer's input dict for the command line's scene and questions."""
    if not args.info:
        return dict(lidar=args.lidar, sweeps=args.sweeps, cams=args.cams, calib=args.calib, questions=args.question)
    from drivepi.visualization.sample_io import find_sample, load_infos
    info = find_sample(load_infos(args.info), args.token, args.info)
    questions = (load_qa_file(args.qa_file).get(info['token'], []) if args.qa_file else []) + args.question
    return dict(info=info, data_root=args.data_root, questions=questions)


def main(argv=None) -> dict:
    args = parse_args(argv)
    inferencer = DrivePIInferencer(load_config(args.config, args.cfg_options), args.checkpoint, device=args.device,
                                   allow_partial=args.allow_partial)
    result = inferencer(model_input(args), out_dir=args.out_dir)
    prediction = result['predictions'][0]
    for turns, answers in zip(prediction['conversations'], prediction['answers']):
        for turn, answer in zip(turns, answers):
            truth = f"   (ground truth: {turn['answer']})" if turn['answer'] else ''
            print(f"Q: {turn['question']}\nA: {answer}{truth}")
    print(f"command: {COMMANDS[prediction['command']]}; planned trajectory (m): {format_waypoints(prediction['traj'])}")
    print(f"wrote {args.out_dir}/predictions/{prediction['token']}.npz")
    for path in result['visualization']:
        print(f'wrote {path}')
    return result


if __name__ == '__main__':
    main()
