"""The text panel of the sample picture: command, planned trajectory and every question with its ground-truth and
predicted answers, marked by the QA metric's matcher; checked on its lines and on the pixels it draws."""
import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from drivepi.geometry import TURN_LEFT  # noqa: E402
from drivepi.visualization.answers import (  # noqa: E402
    CORRECT_COLOR,
    TEXT_COLOR,
    WRONG_COLOR,
    answer_lines,
    draw_answers_panel,
)
from drivepi.visualization.figure import draw_sample_figure  # noqa: E402
from drivepi.visualization.sample_io import SampleView  # noqa: E402

CONVERSATIONS = [[dict(question='Are there any cars?', answer='yes', type='exist', family='nuscenes_qa'),
                  dict(question='How far is the car ahead?', answer='12.4 m', type='distance', family='occupancy')],
                 [dict(question='Describe the scene.', answer='a wide road with two parked cars', type='caption',
                       family='caption')],
                 [dict(question='Is it raining?', answer='', type='', family='user')]]
TRAJ = np.array([[2.0 * t, 0.1 * t] for t in range(1, 7)], np.float32)


def view_with(answers) -> SampleView:
    return SampleView(token='tok', command=TURN_LEFT, pred_traj=TRAJ, conversations=CONVERSATIONS,
                      pred_answers=answers)


def test_lines_mark_answers_as_the_qa_metric_scores_them():
    lines = answer_lines(view_with([['yes', '15.0 m'], ['a wide road with cars'], ['no']]), max_chars=200)
    assert lines[0] == ('command: turn left    planned trajectory (m): (2.0, 0.1), (4.0, 0.2), (6.0, 0.3), '
                        '(8.0, 0.4), (10.0, 0.5), (12.0, 0.6)', TEXT_COLOR)
    assert lines[1] == ('\u2713 Q1 [exist] Are there any cars?    GT: yes    predicted: yes', CORRECT_COLOR)
    # 15.0 m is 2.6 m off 12.4 m: outside the distance tolerance (max(0.5 m, 10 %))
    assert lines[2] == ('\u2717 Q2 [distance] How far is the car ahead?    GT: 12.4 m    predicted: 15.0 m',
                        WRONG_COLOR)
    # caption: unigram F1, all 5 predicted words among the 7 true ones: 2 * 1 * 5/7 / (1 + 5/7) = 0.83
    assert lines[3] == ('\u2713 0.83 Q3 [caption] Describe the scene.    GT: a wide road with two parked cars    '
                        'predicted: a wide road with cars', CORRECT_COLOR)
    assert lines[4] == ('Q4 Is it raining?    predicted: no', TEXT_COLOR)  # no ground truth: not scored
    assert answer_lines(view_with(None), max_chars=30)[1] == ('Q1 [exist] Are there any cars\u2026', TEXT_COLOR)


def panel_pixels(answers) -> np.ndarray:
    fig, ax = plt.subplots(figsize=(8, 1.2), dpi=100)
    draw_answers_panel(ax, answer_lines(view_with(answers), max_chars=120))
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def tinted(pixels: np.ndarray, color) -> int:
    """How many pixels lean clearly to the main channel of ``color`` (anti-aliased text in green or red)."""
    pixels, channel = pixels.astype(int), int(np.argmax(color))
    others = np.delete(pixels, channel, axis=-1).max(-1)
    return int((pixels[..., channel] - others > 40).sum())


def test_panel_pixels_change_with_the_answer_and_show_its_mark():
    right = panel_pixels([['yes', '12.0 m'], ['a road'], ['no']])
    wrong = panel_pixels([['no', '12.0 m'], ['a road'], ['no']])
    np.testing.assert_array_equal(right, panel_pixels([['yes', '12.0 m'], ['a road'], ['no']]))  # deterministic
    changed_rows = np.nonzero((right != wrong).any(axis=(1, 2)))[0]
    height = right.shape[0]
    assert len(changed_rows) and changed_rows.min() > 0.1 * height and changed_rows.max() < 0.45 * height  # Q1 only
    # Q1's line turns from the correct colour to the wrong one
    q1_rows = slice(changed_rows.min(), changed_rows.max() + 1)
    assert tinted(right[q1_rows], CORRECT_COLOR) > 50 and tinted(right[q1_rows], WRONG_COLOR) == 0
    assert tinted(wrong[q1_rows], WRONG_COLOR) > 50 and tinted(wrong[q1_rows], CORRECT_COLOR) == 0


def test_sample_figure_draws_the_panel_below_the_views():
    def figure_pixels(answers) -> np.ndarray:
        fig = draw_sample_figure(view_with(answers))  # no occupancy: nothing to render in 3D
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        plt.close(fig)
        return pixels
    yes = figure_pixels([['yes', '12.0 m'], ['a road'], ['no']])
    no = figure_pixels([['no', '12.0 m'], ['a road'], ['no']])
    assert yes.shape == no.shape
    changed_rows = np.nonzero((yes != no).any(axis=(1, 2)))[0]
    assert len(changed_rows) and changed_rows.min() > 0.6 * yes.shape[0]  # only in the text panel at the bottom
