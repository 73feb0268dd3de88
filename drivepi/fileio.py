"""File input and output of the project.

Output is atomic: a write goes to a temporary file in the target's directory, then ``os.replace`` moves
it into place, so an interrupted job never leaves a half-written file. Input errors name the file: a
missing, empty, truncated or malformed pickle, JSON or config file raises an error whose message holds
its path (the libraries' own messages, e.g. pickle's "Ran out of input", do not).

Pickles (info ``.pkl`` files) and MMEngine ``.py`` configs run code when loaded: read only trusted files."""
import ast
import contextlib
import io
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

import numpy as np


@contextlib.contextmanager
def atomic_open(path: Union[str, os.PathLike], mode: str = 'wb', encoding: Optional[str] = None) -> Iterator[Any]:
    """Open a temporary file beside ``path`` (``encoding`` for text modes); it replaces ``path`` only if the
    block succeeds, with the permissions ``open`` would give (the umask's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: Union[str, os.PathLike], overwrite: bool = False) -> Iterator[Path]:
    """A temporary directory beside ``path`` that replaces it only if the block succeeds.

    ``path`` must be absent or empty unless ``overwrite`` (FileExistsError otherwise).
    """
    path = Path(path)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f'{path} is not empty; pass overwrite=True to replace it')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f'.{path.name}.'))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700
        yield tmp
        replace_directory(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def replace_directory(src: Union[str, os.PathLike], dst: Union[str, os.PathLike]) -> None:
    """Move the directory ``src`` to ``dst``, removing what was at ``dst`` first."""
    if Path(dst).exists():
        shutil.rmtree(dst)
    os.replace(src, dst)


def atomic_write_json(path: Union[str, os.PathLike], obj: Any, indent: Optional[int] = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path, 'w') as f:
        json.dump(obj, f, indent=indent)


def atomic_write_pickle(path: Union[str, os.PathLike], obj: Any) -> None:
    """Pickle ``obj`` to ``path`` atomically."""
    atomic_write_pickles({path: obj})


def atomic_write_pickles(objs: Dict[Union[str, os.PathLike], Any]) -> None:
    """Pickle each value to its path, all or none: every file is written to its temporary file first, and
    the files replace their paths only when every one is complete."""
    with contextlib.ExitStack() as stack:
        files = {path: stack.enter_context(atomic_open(path, 'wb')) for path in objs}
        for path, obj in objs.items():
            pickle.dump(obj, files[path], protocol=pickle.HIGHEST_PROTOCOL)


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


# What readers raise on a truncated or malformed file (JSONDecodeError and UnicodeDecodeError are ValueErrors
# that no reader raises for a good file, unlike ValueError itself).
READ_ERRORS = (EOFError, pickle.UnpicklingError, json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile)


@contextlib.contextmanager
def naming_the_file(path: Union[str, os.PathLike], what: str) -> Iterator[None]:
    """Re-raise a :data:`READ_ERRORS` error of reading ``path`` inside the block as a ValueError that names
    ``what`` (e.g. 'info file') and the path; anything else passes unchanged."""
    try:
        yield
    except READ_ERRORS as err:
        raise ValueError(f'{what} {path} is empty, truncated or malformed ({type(err).__name__}: {err})') from err


def read_pickle(path: Union[str, os.PathLike], what: str = 'pickle file') -> Any:
    """Unpickle ``path``, with errors that name it (:func:`naming_the_file`). Trusted files only."""
    with naming_the_file(path, what), open(path, 'rb') as f:
        return pickle.load(f)


def read_json(path: Union[str, os.PathLike], what: str = 'JSON file') -> Any:
    """Parse the UTF-8 JSON file ``path``, with errors that name it (:func:`naming_the_file`)."""
    with naming_the_file(path, what), open(path, encoding='utf-8') as f:
        return json.load(f)


def read_config(path: Union[str, os.PathLike]):
    """``mmengine.Config.fromfile(path)``; a syntax error names the file that has it, the config or one of its
    ``_base_`` files (MMEngine's own message names neither)."""
    from mmengine.config import Config
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        culprit = _unparsable_config(Path(path)) or path
        raise SyntaxError(f'config file {culprit} has a syntax error: {err}') from err


def _unparsable_config(path: Path) -> Optional[Path]:
    """``path`` or the first of its relative ``_base_`` files (recursively) that Python cannot parse, else None."""
    try:
        tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    except SyntaxError:
        return path
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_base_' for t in node.targets):
            bases = ast.literal_eval(node.value)
            for base in [bases] if isinstance(bases, str) else bases:
                culprit = (path.parent / base).is_file() and _unparsable_config(path.parent / base)
                if culprit:
                    return culprit
    return None
