"""Turn a training checkpoint into a release checkpoint (model zoo style, like mmdet's publish_model.py).

    python tools/publish_checkpoint.py work_dirs/mini_long/iter_4000.pth checkpoints/drivepi_mini_long.pth

Keeps the weights and the training meta (iteration, seed, config text, model signature), drops the
optimizer and the message hub (so the release loads with ``torch.load(weights_only=True)`` and no
allow-list), and appends the first 8 hex digits of the file's SHA-256 to its name
(``drivepi_mini_long-<sha8>.pth``), so a download can be checked.
"""
import argparse
import hashlib
from pathlib import Path

import torch

from drivepi.engine.checkpoint_loading import SIGNATURE_KEY, load_checkpoint_file
from drivepi.fileio import atomic_open

RELEASE_META = ('iter', 'epoch', 'seed', 'cfg', 'mmengine_version', 'time', SIGNATURE_KEY)


def publish(in_file, out_file) -> Path:
    """Write the stripped checkpoint; returns the final path (with the SHA-256 prefix in its name)."""
    checkpoint = load_checkpoint_file(in_file, map_location='cpu')
    if 'meta' not in checkpoint:
        raise ValueError(f'{in_file}: not an MMEngine checkpoint (no meta: a bare state dict?)')
    meta = {k: v for k, v in checkpoint['meta'].items() if k in RELEASE_META}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_file, 'wb') as f:
        torch.save(dict(state_dict=checkpoint['state_dict'], meta=meta), f)
    digest = hashlib.sha256(out_file.read_bytes()).hexdigest()[:8]
    final = out_file.with_name(f'{out_file.stem}-{digest}{out_file.suffix}')
    out_file.replace(final)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('in_file', help='training checkpoint (.pth)')
    parser.add_argument('out_file', help='release checkpoint to write (the SHA-256 prefix is added to its name)')
    args = parser.parse_args()
    final = publish(args.in_file, args.out_file)
    print(f'{final} ({final.stat().st_size / 1e6:.1f} MB)')


if __name__ == '__main__':
    main()
