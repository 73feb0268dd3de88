"""Atomic writers for the generated data files, on top of :func:`drivepi.fileio.atomic_open`."""
import io
import zipfile
from pathlib import Path

import numpy as np

from drivepi.fileio import atomic_open


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders."""
    with atomic_open(path, 'wb') as f:
        f.write(data)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_npz(path, arrays: dict, level: int = 1) -> None:
    """Write a deflate-compressed ``.npz`` of ``arrays`` (readable by ``np.load``) to ``path`` atomically;
    ``level`` is the zlib level (1 = fast; ground-truth grids are mostly constant and compress well anyway)."""
    with atomic_open(path, 'wb') as f, zipfile.ZipFile(f, 'w', zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, array in arrays.items():
            with zf.open(f'{name}.npy', 'w') as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def atomic_write_image(path, image: np.ndarray, quality: int = 90) -> None:
    """Write an (H,W,3) uint8 RGB or (H,W) grey image (JPEG or PNG by the suffix of ``path``) atomically."""
    from PIL import Image
    buf = io.BytesIO()
    fmt = 'JPEG' if Path(path).suffix.lower() in ('.jpg', '.jpeg') else 'PNG'
    Image.fromarray(image).save(buf, format=fmt, **({'quality': quality} if fmt == 'JPEG' else {}))
    atomic_write_bytes(path, buf.getvalue())
