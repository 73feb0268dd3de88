"""The text panel of a sample picture: the driving command, the planned (and ground-truth) trajectory, and every
question with its ground-truth and predicted answers, marked correct or wrong by the QA metric's own matcher
(:func:`drivepi.evaluation.qa_accuracy.answer_score`).
"""
from typing import List, Optional, Tuple

from drivepi.evaluation.qa_accuracy import ANSWER_KINDS, answer_score, format_waypoints
from drivepi.geometry import COMMANDS

from .sample_io import SampleView

TEXT_COLOR = (0, 0, 0)
CORRECT_COLOR = (0, 140, 0)
WRONG_COLOR = (205, 0, 0)
CORRECT_MARK, WRONG_MARK = '\u2713', '\u2717'  # check and ballot marks (DejaVu Sans has both)
FONT_SIZE = 8
LINE_HEIGHT = 0.2  # inches per text line at FONT_SIZE
CHARS_PER_INCH = 15  # about what fits at FONT_SIZE; longer lines are cut with an ellipsis

Line = Tuple[str, Tuple[int, int, int]]


def plan_line(view: SampleView) -> Optional[str]:
    """``command: ...    planned trajectory (m): (x, y), ...    GT trajectory (m): ...`` (the parts the view
    has), None when it has none."""
    parts = []
    if view.command is not None:
        parts.append(f'command: {COMMANDS[int(view.command)]}')
    if view.pred_traj is not None:
        parts.append(f'planned trajectory (m): {format_waypoints(view.pred_traj)}')
    if view.gt_traj is not None and len(view.gt_traj):
        parts.append(f'GT trajectory (m): {format_waypoints(view.gt_traj)}')
    return '    '.join(parts) if parts else None


def turn_line(number: int, turn: dict, pred: Optional[str]) -> Line:
    """One question with its answers; a prediction with a ground-truth answer of a known type is scored
    (caption answers, scored softly, show their score) and coloured by whether it is correct."""
    gt, qa_type = turn.get('answer', ''), turn.get('type', '')
    text = f'Q{number}' + (f' [{qa_type}]' if qa_type else '') + f' {turn["question"]}'
    if gt:
        text += f'    GT: {gt}'
    if pred is None:
        return text, TEXT_COLOR
    text += f'    predicted: {pred}'
    if not gt or qa_type not in ANSWER_KINDS:
        return text, TEXT_COLOR
    score = answer_score(pred, gt, qa_type)
    correct = score >= 0.5
    mark = (CORRECT_MARK if correct else WRONG_MARK) + ('' if score in (0.0, 1.0) else f' {score:.2f}')
    return f'{mark} {text}', CORRECT_COLOR if correct else WRONG_COLOR


def answer_lines(view: SampleView, max_chars: int) -> List[Line]:
    """The panel's lines: the command and trajectory line, then one line per question turn; lines longer
    than ``max_chars`` are cut with an ellipsis."""
    plan = plan_line(view)
    lines = [(plan, TEXT_COLOR)] if plan else []
    predictions = view.pred_answers or [[None] * len(turns) for turns in view.conversations]
    turns = [(turn, pred) for conversation, answers in zip(view.conversations, predictions)
             for turn, pred in zip(conversation, answers)]
    lines += [turn_line(number, turn, pred) for number, (turn, pred) in enumerate(turns, start=1)]
    return [(text if len(text) <= max_chars else text[:max_chars - 1] + '\u2026', color) for text, color in lines]


def draw_answers_panel(ax, lines: List[Line]) -> None:
    """Write ``lines`` top to bottom on ``ax`` (axes hidden), evenly spaced over its height (the sample figure
    gives each line :data:`LINE_HEIGHT`)."""
    ax.set_axis_off()
    for i, (text, color) in enumerate(lines):
        ax.text(0.0, 1.0 - (i + 0.5) / len(lines), text, transform=ax.transAxes, ha='left', va='center',
                fontsize=FONT_SIZE, color=[c / 255 for c in color])
