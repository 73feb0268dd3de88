"""Multi-view camera images: loading (a missing camera tolerated and marked) and resize/crop.

Camera geometry travels as (V,4,4) arrays in ``results``: ``cam2img`` (intrinsics, padded to 4x4,
including the image augmentation), ``cam2ego`` and ``ego2img = cam2img @ inv(cam2ego)``.
"""
from collections import Counter
from typing import Dict, Optional, Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get

from drivepi.datasets.file_checks import check_image_file, decode_image
from drivepi.geometry import CAMERA_NAMES
from drivepi.registry import TRANSFORMS


def pad_to_4x4(matrix) -> np.ndarray:
    """A (3,3), (3,4) or (4,4) matrix as a (4,4) float64 homogeneous matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    padded = np.eye(4)
    padded[:matrix.shape[0], :matrix.shape[1]] = matrix
    return padded


def _size(shape: tuple) -> str:
    return f'{shape[1]}x{shape[0]}' + (f'x{shape[2]}' if len(shape) > 2 and shape[2] != 3 else '')


def common_shape(shapes: Dict[str, tuple], paths: Dict[str, str], token=None) -> tuple:
    """The image shape shared by the views ``shapes`` (camera -> (H, W, C)).

    Raises:
        ValueError: the views differ in size. The error names the views that differ from the size most views
            have (with their files), or, when no size is the most common, every view with its size.
    """
    counts = Counter(shapes.values())
    if len(counts) == 1:
        return next(iter(counts))
    (majority, count), = counts.most_common(1)
    if list(counts.values()).count(count) == 1:
        odd = [cam for cam, shape in shapes.items() if shape != majority]
        listed = '; '.join(f'{cam} ({paths[cam]}) is {_size(shapes[cam])}' for cam in odd)
        raise ValueError(f'camera image{"s" if len(odd) > 1 else ""} of the wrong size: {listed}, where the other '
                         f'{count} views are {_size(majority)} (W x H): all views must share one size')
    listed = ', '.join(f'{cam} {_size(shape)} ({paths[cam]})' for cam, shape in shapes.items())
    raise ValueError(f'sample {token}: the camera images differ in size and no size is the most common: {listed} '
                     '(W x H): all views must share one size')


@TRANSFORMS.register_module()
class DrivePILoadMultiViewImageFromFiles(BaseTransform):
    """Load the cameras of ``cam_names`` in that order; a camera absent from the info gets a zero
    image, identity matrices and ``cam_valid = False``.

    A camera listed in the info whose file is missing, truncated or corrupt (a decoder warning,
    :func:`drivepi.datasets.file_checks.decode_image`) is an error naming the file (only an absent
    entry counts as a missing camera). Images must share one size.

    Added keys: ``img`` list of V (H,W,3) uint8 BGR, ``cam2img``/``cam2ego``/``ego2img`` (V,4,4)
    float64, ``cam_valid`` bool (V,), ``img_shape``/``ori_shape`` (H, W), ``filename`` list, ``cam_names``.

    Args:
        cam_names: camera channels, the order of the view axis V.
        color_type: mmcv colour flag.
        backend_args: mmengine file backend arguments.
    """

    def __init__(self, cam_names: Sequence[str] = CAMERA_NAMES, color_type: str = 'color',
                 backend_args: Optional[dict] = None):
        self.cam_names = tuple(cam_names)
        self.color_type = color_type
        self.backend_args = backend_args

    def _load(self, path: str) -> np.ndarray:
        check_image_file(path)
        return decode_image(get(path, backend_args=self.backend_args), path, self.color_type)

    def transform(self, results: dict) -> dict:
        images = results.get('images', {})
        present = [cam for cam in self.cam_names if images.get(cam, {}).get('img_path')]
        if not present:
            raise ValueError(f'sample {results.get("token")} has none of the cameras {self.cam_names}')
        loaded = {cam: self._load(images[cam]['img_path']) for cam in present}
        shape = common_shape({cam: img.shape for cam, img in loaded.items()},
                             {cam: images[cam]['img_path'] for cam in present}, results.get('token'))
        blank = np.zeros(shape, dtype=np.uint8)
        results['img'] = [loaded.get(cam, blank) for cam in self.cam_names]
        results['cam_valid'] = np.array([cam in loaded for cam in self.cam_names])
        results['cam2img'] = np.stack([pad_to_4x4(images[cam]['cam2img']) if cam in loaded else np.eye(4)
                                       for cam in self.cam_names])
        results['cam2ego'] = np.stack([pad_to_4x4(images[cam]['cam2ego']) if cam in loaded else np.eye(4)
                                       for cam in self.cam_names])
        results['ego2img'] = results['cam2img'] @ np.linalg.inv(results['cam2ego'])
        results['filename'] = [images[cam]['img_path'] if cam in loaded else '' for cam in self.cam_names]
        results['cam_names'] = list(self.cam_names)
        results['img_shape'] = results['ori_shape'] = shape[:2]
        return results


@TRANSFORMS.register_module()
class MultiViewImageResizeCrop(BaseTransform):
    """Resize every view by one scale and crop it to ``final_size``; update ``cam2img`` and ``ego2img``.

    The base scale makes the image just cover ``final_size``; it is multiplied by a factor drawn
    uniformly from ``scale_range``. The crop keeps the bottom of the image (the sky goes first);
    horizontally it is centred, or uniform at random with ``random_crop``. Regions outside the
    resized image are zero. Pixel (u, v) maps to (u * sx - left, v * sy - top); as ``ego2img`` yields
    (u d, v d, d, 1) for depth d, the offsets sit in column 2 of the (4,4) ``img_aug_matrix``.

    Args:
        final_size: output (H, W) in pixels.
        scale_range: (low, high) factor on the base scale; (1, 1) for testing.
        random_crop: random horizontal crop offset (training) instead of centred.
    """

    def __init__(self, final_size: Sequence[int], scale_range: Sequence[float] = (1.0, 1.0),
                 random_crop: bool = False):
        self.final_size = tuple(int(s) for s in final_size)
        self.scale_range = tuple(float(s) for s in scale_range)
        self.random_crop = random_crop

    def _sample_aug(self, height: int, width: int) -> tuple:
        out_h, out_w = self.final_size
        scale = max(out_h / height, out_w / width) * np.random.uniform(*self.scale_range)
        new_w, new_h = int(round(width * scale)), int(round(height * scale))
        top = new_h - out_h
        slack = new_w - out_w
        left = int(np.random.uniform(min(0, slack), max(0, slack))) if self.random_crop else slack // 2
        return new_w, new_h, left, top

    def _crop(self, img: np.ndarray, left: int, top: int) -> np.ndarray:
        """Window [top, top+H) x [left, left+W) of ``img``, zero where it falls outside."""
        out_h, out_w = self.final_size
        out = np.zeros((out_h, out_w) + img.shape[2:], dtype=img.dtype)
        src_y0, src_x0 = max(top, 0), max(left, 0)
        src_y1, src_x1 = min(top + out_h, img.shape[0]), min(left + out_w, img.shape[1])
        if src_y1 > src_y0 and src_x1 > src_x0:
            out[src_y0 - top:src_y1 - top, src_x0 - left:src_x1 - left] = img[src_y0:src_y1, src_x0:src_x1]
        return out

    def transform(self, results: dict) -> dict:
        height, width = results['img'][0].shape[:2]
        new_w, new_h, left, top = self._sample_aug(height, width)
        results['img'] = [self._crop(mmcv.imresize(img, (new_w, new_h)), left, top) for img in results['img']]
        img_aug = np.eye(4)
        img_aug[0, 0], img_aug[1, 1] = new_w / width, new_h / height
        img_aug[0, 2], img_aug[1, 2] = -left, -top
        results['cam2img'] = img_aug @ results['cam2img']
        results['ego2img'] = img_aug @ results['ego2img']
        results['img_aug_matrix'] = img_aug
        results['img_shape'] = self.final_size
        return results
