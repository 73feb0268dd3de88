"""Plot a training run's learning curves (losses and every validation metric vs iteration) as a PNG.

    python tools/plot_learning_curves.py WORK_DIR --out docs/learning_curves_mini.png [--title TEXT]

Reads ``WORK_DIR/*/vis_data/scalars.json`` (MMEngine's LocalVisBackend); see
``drivepi.visualization.learning_curves``.
"""
import argparse

from drivepi.visualization.learning_curves import find_scalar_files, plot_learning_curves, read_scalars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='training work dir (holds <timestamp>/vis_data/scalars.json)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--title', help='figure title')
    args = parser.parse_args()
    panels = plot_learning_curves(read_scalars(find_scalar_files(args.work_dir)), args.out, args.title)
    print(f'{args.out}: {", ".join(panels)}')


if __name__ == '__main__':
    main()
