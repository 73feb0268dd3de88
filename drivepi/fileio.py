"""Atomic file output: a write goes to a temporary file in the target's directory, then
``os.replace`` moves it into place, so an interrupted job never leaves a half-written file."""
import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = 'wb') -> Iterator[Any]:
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


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path, 'w') as f:
        json.dump(obj, f, indent=indent)


def atomic_write_pickle(path: str | os.PathLike, obj: Any) -> None:
    """Pickle ``obj`` to ``path`` atomically."""
    with atomic_open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def atomic_save_npz(path: str | os.PathLike, compressed: bool = True, **arrays: np.ndarray) -> None:
    """Save arrays to an ``.npz`` file atomically."""
    with atomic_open(path, 'wb') as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
