"""Learning curves from MMEngine's scalars.json: parsing (resumed runs, validation lines) and the PNG."""
import json

import numpy as np
import pytest
from PIL import Image

from drivepi.visualization.learning_curves import PANELS, find_scalar_files, plot_learning_curves, read_scalars


def write_lines(path, records):
    path.parent.mkdir(parents=True)
    path.write_text('\n'.join(json.dumps(r) for r in records) + '\n')


def test_reads_train_and_val_lines_of_resumed_runs(tmp_path):
    write_lines(tmp_path / '20260101_000000' / 'vis_data' / 'scalars.json',
                [dict(lr=1e-3, loss=5.0, loss_text=3.0, iter=10, step=10),
                 dict(loss=4.0, loss_text=2.5, step=20),
                 {'qa/accuracy': 40.0, 'qa/accuracy/exist': 55.0, 'qa/majority_accuracy': 42.0, 'step': 20}])
    write_lines(tmp_path / '20260102_000000' / 'vis_data' / 'scalars.json',   # resumed at 20
                [dict(loss=3.5, loss_text=2.0, step=20), dict(loss=3.0, loss_text=1.5, step=30),
                 {'qa/accuracy': 61.5, 'qa/accuracy/exist': 80.0, 'step': 30},
                 dict(loss=2.0, loss_text=1.0, step=40),
                 {'qa/accuracy': 70.0, 'step': 0}])   # logged by epoch: placed at the last iteration, 40
    files = find_scalar_files(tmp_path)
    assert [f.parts[-3] for f in files] == ['20260101_000000', '20260102_000000']
    series = read_scalars(files)
    assert series['loss'] == [(10, 5.0), (20, 3.5), (30, 3.0), (40, 2.0)]   # the resumed run's step 20 wins
    assert series['qa/accuracy'] == [(20, 40.0), (30, 61.5), (40, 70.0)]
    assert 'iter' not in series and 'step' not in series


def test_png_has_one_panel_per_group_with_data(tmp_path):
    series = {'loss': [(10, 5.0), (20, 3.0)], 'loss_text': [(10, 3.0), (20, 1.0)],
              'qa/accuracy': [(20, 40.0), (40, 60.0)], 'qa/majority_accuracy': [(20, 42.0), (40, 42.0)],
              'occ/RayIoU': [(20, 10.0), (40, 20.0)]}
    panels = plot_learning_curves(series, tmp_path / 'curves.png', title='test run')
    assert panels == ['training losses', 'QA accuracy per type (dashed: most common answer)', 'occupancy']
    image = np.asarray(Image.open(tmp_path / 'curves.png'))
    assert image.shape[0] > image.shape[1] * 0.8   # three stacked panels
    assert image.std() > 10   # lines and text were drawn
    series.pop('occ/RayIoU')
    two = plot_learning_curves(series, tmp_path / 'two.png')
    assert len(two) == 2 and np.asarray(Image.open(tmp_path / 'two.png')).shape[0] < image.shape[0]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='vis_data/scalars.json'):
        find_scalar_files(tmp_path)
    bad = tmp_path / 'run' / 'vis_data' / 'scalars.json'
    write_lines(bad, [dict(loss=1.0, step=1)])
    bad.write_text(bad.read_text() + '{"loss": \n')
    with pytest.raises(ValueError, match=r'scalars.json:2: not a JSON line'):
        read_scalars([bad])
    with pytest.raises(ValueError, match='no loss or metric'):
        plot_learning_curves({'lr': [(1, 0.1)]}, tmp_path / 'x.png')


def test_gain_panel_draws_the_gains_but_not_their_interval_bounds(tmp_path):
    series = {'qa/gain_over_majority': [(20, 2.0), (40, 9.0)], 'qa/gain_over_majority/exist': [(20, 5.0), (40, 20.0)],
              'qa/gain_over_majority_low': [(20, -1.0), (40, 4.0)], 'qa/gain_over_majority_high/exist': [(40, 30.0)]}
    panels = plot_learning_curves(series, tmp_path / 'gain.png')
    assert panels == ['QA gain over the most common answer, per type (points)']
    drawn = [name for name in series if PANELS[2][1](name)]
    assert drawn == ['qa/gain_over_majority', 'qa/gain_over_majority/exist']
