"""A built-in driving question-answer corpus for training the tiny test tokenizer.

The sentences follow the phrasing of DrivePI's QA families (occupancy, flow, planning, captions,
nuScenes-QA), so the questions and answers of the data engine tokenise into few BPE tokens.
"""
import random
from typing import List

from drivepi.geometry import COMMANDS, OPENOCC_CLASSES

# display names of the OpenOcc classes ('construction vehicle', ..., 'free space')
OCC_CLASSES = tuple(name.replace('_', ' ') for name in OPENOCC_CLASSES[:-1]) + ('free space',)
DIRECTIONS = ('front', 'back', 'front left', 'front right', 'back left', 'back right', 'left', 'right')
STATUSES = ('moving', 'parked', 'stopped', 'with rider', 'without rider', 'standing', 'sitting')

TEMPLATES = (
    'What is the occupancy class of the voxel at ({x:.1f}, {y:.1f}, {z:.1f})?',
    'The voxel at ({x:.1f}, {y:.1f}, {z:.1f}) is occupied by {cls}.',
    'Is the position {d:.1f} m ahead of the ego vehicle occupied?',
    'Yes, a {cls} occupies the space {d:.1f} m to the {dir} of the ego vehicle.',
    'No, the space {d:.1f} m to the {dir} is free.',
    'What is the velocity of the {cls} at ({x:.1f}, {y:.1f})?',
    'The {cls} moves at {v:.1f} m/s with velocity ({vx:.2f}, {vy:.2f}) m/s.',
    'Is the {cls} to the {dir} moving or static?',
    'The {cls} is {status}.',
    'The driving command is {cmd}. What should the ego vehicle do?',
    'The ego vehicle should {cmd}. Its waypoints are ({x:.2f}, {y:.2f}), ({vx:.2f}, {vy:.2f}).',
    'Plan the trajectory for the next 3 seconds.',
    'There is a {cls} {d:.1f} m to the {dir}, so the ego vehicle should slow down and {cmd}.',
    'Describe the driving scene.',
    'The ego vehicle drives on a {cls} with {n} cars and {m} pedestrians nearby.',
    'Are there any {cls}s?',
    'How many {cls}s are there?',
    'How many {status} {cls}s are to the {dir} of the ego car?',
    'What is the status of the {cls} to the {dir}?',
    'Is there a {cls} to the {dir} of the {status} {cls}?',
    'Are there the same number of {cls}s and {cls}s?',
    'What is the thing to the {dir} of the ego car?',
    'yes', 'no', '{n}', '{cls}', '{status}',
)


def _fill(template: str, rng: random.Random) -> str:
    """Fill one template with random classes, numbers (metres, m/s) and directions."""
    return template.format(
        x=rng.uniform(-40, 40), y=rng.uniform(-40, 40), z=rng.uniform(-1, 5.4),
        d=rng.uniform(0, 40), v=rng.uniform(0, 15), vx=rng.uniform(-10, 10), vy=rng.uniform(-10, 10),
        cls=rng.choice(OCC_CLASSES), dir=rng.choice(DIRECTIONS), status=rng.choice(STATUSES),
        cmd=rng.choice(COMMANDS), n=rng.randint(0, 12), m=rng.randint(0, 12))


def driving_qa_corpus(num_sentences_per_template: int = 40, seed: int = 0) -> List[str]:
    """Sentences from every template, filled with random values.

    Args:
        num_sentences_per_template: how many filled copies of each template.
        seed: RNG seed; the same seed gives the same corpus.

    Returns:
        ``len(TEMPLATES) * num_sentences_per_template`` sentences.
    """
    rng = random.Random(seed)
    return [_fill(t, rng) for t in TEMPLATES for _ in range(num_sentences_per_template)]
