"""Scene captions with a pluggable captioner: any VLM callable, or a ground-truth template.

A captioner is any callable ``captioner(scene: SceneGT) -> str`` with a ``source`` attribute
(stored in the turn's meta; the verifier recomputes ``template`` captions and counts ``vlm`` ones
as unverifiable). :class:`VLMCaptioner` adapts a plain VLM function
``vlm(image_paths: list[str], prompt: str) -> str``; :class:`TemplateCaptioner` (the fallback when
no VLM is given) writes the caption from the ground truth: ego speed and command, and the object
counts per class within ``radius`` m.
"""
import importlib
from collections import Counter
from pathlib import Path
from typing import Callable, List, Optional, Protocol

import numpy as np

from drivepi.evaluation.qa_accuracy import format_number
from drivepi.geometry import COMMANDS

from .phrasing import make_turn, pick, plural
from .scene import SceneGT, display_name

Q_CAPTION = ('Describe the driving scene.', 'What do you see around the ego vehicle?',
             'Give a short description of the current traffic scene.')
CAPTION_PROMPT = ('Describe this driving scene from the ego vehicle in two sentences: its motion, '
                  'and the traffic participants around it.')


class Captioner(Protocol):
    """``captioner(scene) -> caption``; ``source`` names the kind (``template`` or ``vlm``)."""
    source: str

    def __call__(self, scene: SceneGT) -> str: ...


def _list_words(items: List[str]) -> str:
    return items[0] if len(items) == 1 else f'{", ".join(items[:-1])} and {items[-1]}'


class TemplateCaptioner:
    """Caption from ground truth, e.g. ``the ego vehicle drives at 5.2 m/s and will go straight.
    within 30 m: 3 cars, 1 bus and 2 pedestrians.`` (classes sorted by count, then name)."""
    source = 'template'

    def __init__(self, radius: float = 30.0, stop_speed: float = 0.5):
        self.radius, self.stop_speed = radius, stop_speed

    def __call__(self, scene: SceneGT) -> str:
        speed = scene.ego_speed
        motion = (f'the ego vehicle drives at {format_number(speed, "m/s")}' if speed >= self.stop_speed
                  else 'the ego vehicle is stopped')
        centers = scene.objects.centers
        near = np.hypot(centers[:, 0], centers[:, 1]) <= self.radius
        counts = Counter(n for keep, n in zip(near, scene.objects.names) if keep)
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        parts = [f'{k} {plural(display_name(n)) if k > 1 else display_name(n)}' for n, k in ordered]
        around = (f'within {format_number(self.radius, "m", 0)}: {_list_words(parts)}' if parts
                  else f'no objects within {format_number(self.radius, "m", 0)}')
        return f'{motion} and will {COMMANDS[scene.command]}. {around}.'


def camera_image_paths(scene: SceneGT) -> List[str]:
    """Absolute camera image paths of a scene: ``img_path`` under the data root, or under
    ``samples/<camera>/`` (mmdet3d v2 infos store bare file names)."""
    paths = []
    for cam, cam_info in sorted(scene.images.items()):
        rel = cam_info.get('img_path')
        if not rel:
            continue
        direct = scene.data_root / rel
        paths.append(str(direct if direct.is_file() else scene.data_root / 'samples' / cam / Path(rel).name))
    return paths


class VLMCaptioner:
    """Adapts ``vlm(image_paths, prompt) -> str`` to the :class:`Captioner` interface."""
    source = 'vlm'

    def __init__(self, vlm: Callable[[list, str], str], prompt: str = CAPTION_PROMPT):
        self.vlm, self.prompt = vlm, prompt

    def __call__(self, scene: SceneGT) -> str:
        caption = self.vlm(camera_image_paths(scene), self.prompt)
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f'sample {scene.token!r}: the VLM captioner returned {caption!r}, not a caption')
        return ' '.join(caption.split())


def load_captioner(spec: Optional[str]) -> Captioner:
    """``'package.module:function'`` -> a :class:`VLMCaptioner` of that function; None -> template."""
    if not spec:
        return TemplateCaptioner()
    module_name, sep, attr = spec.partition(':')
    if not sep:
        raise ValueError(f'captioner {spec!r} must be given as "package.module:function"')
    return VLMCaptioner(getattr(importlib.import_module(module_name), attr))


def generate_captions(scene: SceneGT, rng: np.random.Generator, captioner: Captioner) -> List[list]:
    """One caption conversation of a scene."""
    return [[make_turn(pick(rng, Q_CAPTION), captioner(scene), 'caption', 'caption', source=captioner.source)]]
