"""Cheap validity checks of sensor files, raising errors that name the file and the problem."""
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import mmcv
import numpy as np

FLOAT32_BYTES = 4
JPEG_END_MARKER = b'\xff\xd9'
JPEG_SUFFIXES = ('.jpg', '.jpeg')
_STDERR_FD = 2
_DECODE_LOCK = threading.Lock()  # one decode at a time may own this process's stderr


def check_exists(path: Union[str, os.PathLike], what: str) -> Path:
    """Raise FileNotFoundError naming ``path`` (a ``what``, e.g. 'LiDAR file') when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} not found: {path}')
    return path


def check_points_file(path: Union[str, os.PathLike], num_feats: int = 5) -> Path:
    """Check a ``.pcd.bin`` of float32 points: it exists, is non-empty and whole points long.

    Args:
        path: the point file.
        num_feats: floats per point (5 for nuScenes: x, y, z, intensity, ring).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: its size is zero or not a multiple of ``num_feats * 4`` bytes (truncated).
    """
    path = check_exists(path, 'LiDAR point file')
    size = path.stat().st_size
    point_bytes = num_feats * FLOAT32_BYTES
    if size == 0 or size % point_bytes:
        raise ValueError(f'LiDAR point file {path} is truncated or malformed: {size} bytes is not a '
                         f'positive multiple of {point_bytes} ({num_feats} float32 per point)')
    return path


def nonfinite_problem(values) -> Optional[str]:
    """What is not finite in ``values``: e.g. 'holds NaN at [0, 3]', 'holds 2 NaN and 1 inf values (the first at
    [1, 2])'; None when every value is finite (or the values are not floating point)."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.inexact):
        return None
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    num_nan = int(np.isnan(values).sum())
    counts = [f'{n} {kind}' for n, kind in ((num_nan, 'NaN'), (int(bad.sum()) - num_nan, 'inf')) if n]
    first = [int(i) for i in np.argwhere(bad)[0]]
    if bad.sum() == 1:
        return f'holds {counts[0].split(" ", 1)[1]}' + (f' at {first}' if first else '')
    return f'holds {" and ".join(counts)} values' + (f' (the first at {first})' if first else '')


def array_problem(values, shape: Sequence[Optional[int]]) -> Optional[str]:
    """What makes ``values`` not a finite array of ``shape`` (None: any size on that axis): 'has shape (3, 4),
    expected (4, 4)' or :func:`nonfinite_problem`'s answer; None when it is one."""
    values = np.asarray(values)
    shape = tuple(shape)
    if values.ndim != len(shape) or any(want is not None and got != want for got, want in zip(values.shape, shape)):
        expected = '(' + ', '.join('N' if want is None else str(want) for want in shape) + (',)' if len(shape) == 1
                                                                                           else ')')
        return f'has shape {values.shape}, expected {expected}'
    return nonfinite_problem(values)


def check_finite_points(points: np.ndarray, path: Union[str, os.PathLike]) -> np.ndarray:
    """Raise ValueError naming ``path`` when ``points`` (N, C) hold NaN or inf; return them unchanged."""
    finite = np.isfinite(points)
    if not finite.all():
        bad_rows = int((~finite).any(axis=1).sum())
        what = ' and '.join(kind for kind, found in (('NaN', np.isnan(points).any()), ('inf', np.isinf(points).any()))
                            if found)
        raise ValueError(f'LiDAR point file {path} holds {bad_rows} points with {what} values')
    return points


def check_image_file(path: Union[str, os.PathLike]) -> Path:
    """Check a camera image: it exists, is non-empty and, for JPEG, ends with the end-of-image marker.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is empty or a truncated JPEG.
    """
    path = check_exists(path, 'camera image')
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f'camera image {path} is empty')
    if path.suffix.lower() in JPEG_SUFFIXES:
        with open(path, 'rb') as f:
            f.seek(max(0, size - 64))
            tail = f.read().rstrip(b'\x00\r\n')
        if not tail.endswith(JPEG_END_MARKER):
            raise ValueError(f'camera image {path} is a truncated JPEG (no end-of-image marker)')
    return path


def read_image_file(path: Union[str, os.PathLike], flag: str = 'color', channel_order: str = 'bgr') -> np.ndarray:
    """A camera image read as the dataset reads it: :func:`check_image_file`, then :func:`decode_image` (a decoder
    warning is an error). ``channel_order``: 'bgr' (mmcv, the dataset) or 'rgb'."""
    path = check_image_file(path)
    return decode_image(path.read_bytes(), path, flag, channel_order)


def decode_image(data: bytes, path: Union[str, os.PathLike], flag: str = 'color',
                 channel_order: str = 'bgr') -> np.ndarray:
    """Decode image bytes with mmcv (OpenCV); a decoder warning is an error naming ``path``.

    libjpeg decodes a JPEG whose entropy-coded data is corrupt (end marker intact) anyway, with garbled
    or grey blocks, and only prints a warning ("Corrupt JPEG data: ...") to file descriptor 2, beyond
    Python's reach. Here that descriptor points at a temporary file during the decode, and anything written to it
    fails the image. Decodes in one process are serialised so that the capture sees this decode only.

    Returns:
        (H, W, 3) uint8 BGR (``channel_order='rgb'``: RGB) for ``flag='color'`` (mmcv's flags).

    Raises:
        ValueError: the decoder reported a problem or decoded nothing.
    """
    with _DECODE_LOCK, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(_STDERR_FD)
        os.dup2(captured.fileno(), _STDERR_FD)
        try:
            img = mmcv.imfrombytes(data, flag=flag, channel_order=channel_order)
        finally:
            os.dup2(saved, _STDERR_FD)
            os.close(saved)
        captured.seek(0)
        report = captured.read().decode('utf-8', errors='replace').strip()
    if report:
        raise ValueError(f'camera image {path} is corrupt: the decoder reports "{report}"')
    if img is None:
        raise ValueError(f'camera image {path} cannot be decoded')
    return img
