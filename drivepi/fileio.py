"""Atomic file output: a write goes to a temporary file in the target's directory, then
``os.replace`` moves it into place, so an interrupted job never leaves a half-written file."""
import contextlib
import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np


@contextlib.contextmanager
def atomic_open(path: Union[str, os.PathLike], mode: str = 'wb') -> Iterator[Any]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Union[str, os.PathLike], obj: Any, indent: Optional[int] = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path, 'w') as f:
        json.dump(obj, f, indent=indent)


def atomic_write_pickle(path: Union[str, os.PathLike], obj: Any) -> None:
    """Pickle ``obj`` to ``path`` atomically."""
    with atomic_open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


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
