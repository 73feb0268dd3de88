"""Write our fused BEV of every sample as the BEV feature files of the official DrivePI trainer.

    python tools/export_bev_features.py CONFIG CKPT --info INFO.pkl --out DIR [--data-root DIR] \\
        [--channels 384] [--dtype float32] [--token TOKEN ...] [--limit N] [--device cpu] [--cfg-options k=v ...]

The official release (GitHub ``happinesslz/DrivePI``) trains on precomputed UniLION BEV features that it does not
ship and whose extractor it does not release. Its loader opens ``<bev_feature_folder>/<sample token>.npz`` and
takes ``data[0]``, a ``(C, 180, 180)`` map that its empty vision tower flattens row by row (``b c h w -> b (h w) c``)
and its occupancy head reads back with ``BEVGridTransform`` from ``[-54, 54] m`` at 0.6 m: rows run along y and
columns along x, row 0 / column 0 at -54 m. This tool writes ``DIR/<token>.npz`` with key ``data``, float
``(1, C, 180, 180)`` in that layout: the BEV that our LiDAR and camera branches and fuser make (``extract_feat``,
before the token filter and the LLM), bilinearly resampled from our grid (``[b, c, ix, iy]`` over
``[-40, 40] m``, 0.4 m x the BEV stride) to the official cell centres, zero outside ``[-40, 40] m``. ``--channels``
zero-pads the channels to the trainer's ``feature_hidden_size`` (384 in its configs; or set that to our width).

Limits: our features cover 55 % of the official area (the official occupancy output, [-40, 40] m, lies inside
it, so every cell the occupancy head predicts has features; the planner's BEV attention sees zeros beyond 40 m);
their resolution is ours (1.6 m cells in the mini configs, upsampled to 0.6 m); they were trained for our heads
and token filter, not as UniLION's, so a checkpoint of the official code trained on UniLION features does not
read them: train the official model on them; one keyframe each (the LiDAR branch's sweeps included), no temporal
fusion of earlier keyframes. Files are deflate-compressed; float32 ``(1, 384, 180, 180)`` is 50 MB before
compression (``--dtype float16`` halves it; the official trainer casts inputs to its own precision).
"""
import argparse
import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import DictAction

from drivepi.engine.checkpoint_loading import ALLOW_PARTIAL_HELP
from drivepi.fileio import atomic_write_npz
from drivepi.geometry import OCC_RANGE

OFFICIAL_HALF_RANGE_M = 54.0
OFFICIAL_CELL_M = 0.6
OFFICIAL_SIZE = 180


def official_centers() -> np.ndarray:
    """Cell centres (m) of the official grid along x (columns) and y (rows)."""
    return -OFFICIAL_HALF_RANGE_M + (np.arange(OFFICIAL_SIZE) + 0.5) * OFFICIAL_CELL_M


def resample_to_official(bev: torch.Tensor, point_cloud_range: Sequence[float] = OCC_RANGE) -> torch.Tensor:
    """Our BEV ``(B, C, Hb, Wb)`` (``[b, c, ix, iy]`` over ``point_cloud_range``) -> ``(B, C, 180, 180)``
    ``[b, c, row = y, column = x]`` on the official ``[-54, 54] m`` / 0.6 m grid: bilinear between our cell
    centres (the edge value in the outer half cell), zero outside our range."""
    x0, y0, _, x1, y1, _ = point_cloud_range
    centers = torch.as_tensor(official_centers(), dtype=torch.float32, device=bev.device)
    norm_x = (centers - x0) / (x1 - x0) * 2 - 1
    norm_y = (centers - y0) / (y1 - y0) * 2 - 1
    rows, cols = torch.meshgrid(norm_y, norm_x, indexing='ij')           # output (row = y, column = x)
    grid = torch.stack([rows, cols], dim=-1)                             # grid_sample: (W = iy, H = ix)
    out = F.grid_sample(bev.float(), grid.expand(bev.shape[0], -1, -1, -1), mode='bilinear',
                        padding_mode='border', align_corners=False)
    inside_x = (centers >= x0) & (centers <= x1)
    inside_y = (centers >= y0) & (centers <= y1)
    return out * (inside_y[:, None] & inside_x[None, :])


def pad_channels(features: torch.Tensor, channels: int) -> torch.Tensor:
    """Zero channels appended up to ``channels`` (0: as they are)."""
    have = features.shape[1]
    if not channels or channels == have:
        return features
    if channels < have:
        raise ValueError(f'--channels {channels} is fewer than the model\'s {have} BEV channels')
    return F.pad(features, (0, 0, 0, 0, 0, channels - have))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file (its test pipeline prepares the sensors)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--info', required=True, help='DrivePI info .pkl of the samples')
    parser.add_argument('--out', required=True, help='folder of the <token>.npz files (bev_feature_folder)')
    parser.add_argument('--data-root', help="root of --info's relative paths (default: the config's)")
    parser.add_argument('--channels', type=int, default=0, help='zero-pad the channels to this many (0: keep)')
    parser.add_argument('--dtype', choices=('float32', 'float16'), default='float32')
    parser.add_argument('--token', action='append', default=[], help='only these samples (repeatable)')
    parser.add_argument('--limit', type=int, help='only the first N samples')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', help='cpu, cuda, ... (default: the available accelerator)')
    parser.add_argument('--allow-partial', action='store_true', help=ALLOW_PARTIAL_HELP)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.llm.llm_path=DIR')
    return parser.parse_args(argv)


def selected_infos(args: argparse.Namespace) -> list:
    """The info entries to export (``--token``, then ``--limit``), recovery samples included."""
    from drivepi.visualization.sample_io import load_infos
    infos = load_infos(args.info)['data_list']
    if args.token:
        known = {info['token'] for info in infos}
        missing = sorted(set(args.token) - known)
        if missing:
            raise SystemExit(f'{args.info} has no sample {missing[0]!r}')
        infos = [info for info in infos if info['token'] in set(args.token)]
    return infos[:args.limit] if args.limit is not None else infos


@torch.no_grad()
def main(argv=None) -> list:
    args = parse_args(argv)
    from drivepi.apis import DrivePIInferencer
    from drivepi.utils import load_config
    inferencer = DrivePIInferencer(load_config(args.config, args.cfg_options), args.checkpoint, device=args.device,
                                   allow_partial=args.allow_partial)
    model = inferencer.model
    infos = [inferencer.data_info(dict(info=info, data_root=args.data_root)) for info in selected_infos(args)]
    out, written = Path(args.out), []
    for batch in inferencer.preprocess(infos, batch_size=args.batch_size):
        data = model.data_preprocessor(copy.deepcopy(batch), False)
        bev, _ = model.extract_feat(data['inputs'], data['data_samples'])
        features = pad_channels(resample_to_official(bev), args.channels).cpu().numpy().astype(args.dtype)
        for sample, feature in zip(data['data_samples'], features):
            path = out / f'{sample.token}.npz'
            atomic_write_npz(path, dict(data=feature[None]), level=6)
            written.append(path)
    print(f'wrote {len(written)} BEV feature files (1, {features.shape[1]}, {OFFICIAL_SIZE}, {OFFICIAL_SIZE}) '
          f'{args.dtype} to {out}' if written else 'no samples selected')
    return written


if __name__ == '__main__':
    main()
