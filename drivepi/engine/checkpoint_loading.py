"""Safe and checked checkpoint loading.

Safe: every local checkpoint (``load_from``, ``--resume``, ``tools/test.py``, ``tools/closed_loop.py``,
``tools/publish_checkpoint.py``) is read with ``torch.load(weights_only=True)``, which builds tensors and
plain data only and runs no code named by the file. MMEngine's own loader for local files is replaced, and
the errors name the file: missing, empty, truncated, not a checkpoint, or holding other objects.

Where ``weights_only`` needs help, and why: a training checkpoint also holds the Runner's message hub, whose
``HistoryBuffer`` objects keep numpy arrays and pickle a reference to their statistics methods through
``getattr(HistoryBuffer, 'mean')``. Those load under a narrow allow-list (:data:`MESSAGE_HUB_GLOBALS`):
the ``HistoryBuffer`` class, numpy's array and dtype reconstructors, and a stand-in for ``getattr`` that
returns those four methods and nothing else (the real ``getattr`` would reach any attribute). Release
checkpoints (``tools/publish_checkpoint.py``: weights and meta) need no allow-list.

Checked: :class:`CheckpointCheckHook` stores the model's signature (:func:`model_signature`: a hash of the
state dict's names and shapes and the LLM tokenizer's vocabulary) in the meta of every checkpoint the Runner
saves, and compares a loaded checkpoint with the model (:func:`check_checkpoint`): missing and unexpected
keys, shape mismatches and another tokenizer are an error, unless partial loading is asked for
(``--allow-partial``), which loads the matching part and lists the rest. Checkpoints saved before the
signature existed are checked by their keys and shapes. A state dict without PyTorch's module versions
(``_metadata``, lost e.g. by copying it into a plain dict) would have its spconv kernels permuted by mmdet3d's
loader as spconv 1 kernels: their versions are restored where the stored shapes show the spconv 2 layout, and
a kernel whose layout cannot be told from its shape is an error (:func:`restore_spconv_versions`).

Atomic: MMEngine's local file backend is replaced by :class:`AtomicLocalBackend`, so every checkpoint (and any
other file MMEngine writes through it) goes to a temporary file beside its path first and is renamed into
place when complete: a run killed during a save leaves the previous checkpoints and no half-written file.
``--resume`` without a file (:func:`resume_checkpoint`) falls back to the newest intact checkpoint of the work
dir, with a warning naming both files, when the one ``last_checkpoint`` names is missing, empty or truncated.
"""
import hashlib
import logging
import pickle
import re
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, List, Optional

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
from numpy.core.multiarray import _reconstruct, scalar
from torch.distributed.fsdp import FullyShardedDataParallel, StateDictType

from drivepi.fileio import atomic_write_bytes
from drivepi.registry import HOOKS

SOURCE_KEY = 'drivepi_checkpoint_file'  # set by the loader: the file a checkpoint dict was read from
SIGNATURE_KEY = 'model_signature'       # in checkpoint['meta']
WRAPPER_PREFIX = re.compile(r'^module\.')  # MMEngine strips it when loading (revise_keys)
LISTED_KEYS = 8                          # keys named per kind of mismatch in an error message
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
ALLOW_PARTIAL_HELP = ('load a checkpoint that does not match the model (missing, unexpected or reshaped weights), '
                      'listing what was not loaded, instead of failing')
TORCH_ADVICE = ('Weights only load failed', 'Please file an issue', 'Check the documentation', '(1)', '(2)')
CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')  # CheckpointHook's default file names
ZIP_MAGIC = b'PK\x03\x04'  # what a torch.save zip file starts with
SPCONV_VERSION = 2  # the module version mmdet3d's spconv loader reads as the spconv 2 kernel layout


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, or not matching the model."""


def history_buffer_method(cls: type, name: str):
    """The stand-in for ``getattr`` while a checkpoint unpickles: ``HistoryBuffer``'s statistics methods only."""
    if cls is not HistoryBuffer or name not in HISTORY_BUFFER_METHODS:
        raise pickle.UnpicklingError(f'getattr({cls!r}, {name!r}) is not allowed in a checkpoint')
    return getattr(cls, name)


MESSAGE_HUB_GLOBALS = [HistoryBuffer, (history_buffer_method, 'builtins.getattr'), _reconstruct, scalar,
                       np.ndarray, np.dtype,
                       *(type(np.dtype(t)) for t in (np.bool_, np.int32, np.int64, np.float32, np.float64))]


def load_checkpoint_file(filename, map_location=None) -> dict:
    """Read a checkpoint file safely (``weights_only``, see the module docstring).

    Returns:
        the checkpoint dict (a bare state dict comes back as ``{'state_dict': ...}``), with the file's path
        under :data:`SOURCE_KEY`.

    Raises:
        FileNotFoundError, CheckpointError: naming the file.
    """
    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.stat().st_size == 0:
        raise CheckpointError(f'checkpoint {path} is empty (0 bytes)')
    try:
        with torch.serialization.safe_globals(MESSAGE_HUB_GLOBALS):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, UnpicklingError... on other files
        if isinstance(err, pickle.UnpicklingError) and zipfile.is_zipfile(path):
            raise CheckpointError(f'checkpoint {path} holds objects other than tensors and plain data, refused by '
                                  f'the safe loader: {_reason(err)}') from err
        raise CheckpointError(f'checkpoint {path} is truncated or not a PyTorch checkpoint '
                              f'({type(err).__name__}: {_reason(err)})') from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(checkpoint).__name__}, not a state dict')
    checkpoint = checkpoint if 'state_dict' in checkpoint else dict(state_dict=checkpoint)
    checkpoint[SOURCE_KEY] = str(path)
    return checkpoint


def _reason(err: Exception) -> str:
    """What a torch.load error says about the file, without torch's generic advice around it."""
    lines = [line.strip() for line in str(err).splitlines()]
    reason = ' '.join(line for line in lines if line and not line.startswith(TORCH_ADVICE))
    return reason.replace('WeightsUnpickler error: ', '') or type(err).__name__


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> dict:
    """MMEngine's loader of local checkpoint files, replaced by :func:`load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location)


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose writes are atomic (:func:`drivepi.fileio.atomic_write_bytes`: a
    temporary file beside the path, renamed into place when complete)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


# the backend of local paths (prefix '') for every writer that goes through MMEngine's fileio: Runner and
# FlexibleRunner checkpoints (mmengine.runner.checkpoint.save_checkpoint), CheckpointHook, dumps
register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def checkpoint_file_problem(filename) -> Optional[str]:
    """Why ``filename`` cannot be a complete checkpoint ('is missing', 'is empty (0 bytes)', 'is truncated ...'),
    or None. A zip checkpoint (what ``torch.save`` writes) is complete when its central directory, written last,
    is there; any other file is read through (:func:`load_checkpoint_file`)."""
    path = Path(filename)
    if not path.is_file():
        return 'is missing'
    if path.stat().st_size == 0:
        return 'is empty (0 bytes)'
    if zipfile.is_zipfile(path):
        return None
    with open(path, 'rb') as f:
        if f.read(4) == ZIP_MAGIC:
            return f'is truncated (a zip checkpoint of {path.stat().st_size} bytes without its central directory, ' \
                   'which is written last)'
    try:
        load_checkpoint_file(path, map_location='cpu')
    except CheckpointError as err:
        return str(err).replace(f'checkpoint {path} ', '', 1)
    return None


def _checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_NAME.match(path.name)
    return int(match.group(1)) if match else -1


def resume_checkpoint(work_dir) -> Optional[str]:
    """The checkpoint an automatic ``--resume`` continues from: the one ``<work_dir>/last_checkpoint`` names
    (MMEngine's choice), or, when that one is missing, empty or truncated, the newest intact ``iter_*.pth`` /
    ``epoch_*.pth`` beside it or in the work dir, with a warning naming both. None without ``last_checkpoint``
    (MMEngine then trains from the start).

    Raises:
        CheckpointError: the named checkpoint is unusable and no intact one is left.
    """
    marker = Path(work_dir) / 'last_checkpoint'
    if not marker.is_file():
        return None
    named = marker.read_text().strip()
    problem = checkpoint_file_problem(named) if named else None
    if named and problem is None:
        return named
    what = f'checkpoint {named} named by {marker} {problem}' if named else f'{marker} is empty'
    folders = {Path(work_dir)} | ({Path(named).parent} if named else set())
    candidates = sorted({path for folder in folders if folder.is_dir() for path in folder.iterdir()
                         if CHECKPOINT_NAME.match(path.name) and str(path) != named},
                        key=lambda path: (_checkpoint_step(path), path.stat().st_mtime), reverse=True)
    for candidate in candidates:
        if checkpoint_file_problem(candidate) is None:
            print_log(f'{what}: resuming from {candidate} instead, the newest intact checkpoint',
                      logger='current', level=logging.WARNING)
            return str(candidate)
    raise CheckpointError(f'{what}, and no other intact checkpoint is there to resume from '
                          f'({", ".join(sorted(str(folder) for folder in folders))})')


def _spconv_modules(model: torch.nn.Module) -> List[tuple]:
    """``(name, module)`` of the spconv modules that mmdet3d's loader reads by module version (its
    ``register_spconv2`` sets ``SparseModule._version = 2``)."""
    try:
        from spconv.pytorch import SparseModule
    except ImportError:
        return []
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, SparseModule) and getattr(module, '_version', None) == SPCONV_VERSION]


def restore_spconv_versions(model: torch.nn.Module, checkpoint: dict) -> List[str]:
    """Give spconv modules of the checkpoint's state dict that lack PyTorch's module version (``_metadata``) the
    version of the layout their kernel shapes show, before the weights are copied.

    mmdet3d's spconv loader permutes the kernel of a module without version 2 from spconv 1's (D, H, W, in, out)
    layout to spconv 2's (out, D, H, W, in): a state dict that lost its metadata would load its spconv 2 kernels
    permuted (or not at all, with a size warning). A stored kernel with the model's shape whose permutation does
    not have it is in the spconv 2 layout: its version is set (``checkpoint['state_dict']`` becomes an
    ``OrderedDict`` with ``_metadata`` if it was a plain dict). A kernel in spconv 1's layout is left to the loader.

    Returns:
        the names of the modules whose version was restored.

    Raises:
        CheckpointError: a kernel's shape is the same in both layouts (in = out = every kernel size), so its
            layout cannot be told.
    """
    state = checkpoint['state_dict']
    metadata = getattr(state, '_metadata', None)
    keys = {WRAPPER_PREFIX.sub('', key): key for key in state}
    restored, ambiguous = [], []
    for name, module in _spconv_modules(model):
        if (metadata or {}).get(name, {}).get('version') == SPCONV_VERSION:
            continue
        weight = getattr(module, 'weight', None)
        key = keys.get(f'{name}.weight')
        if weight is None or key is None or weight.dim() < 2:
            continue
        stored = tuple(state[key].shape)
        permuted = stored[-1:] + stored[:-1]
        if stored != tuple(weight.shape):
            continue  # spconv 1 layout (the loader permutes it) or a mismatch that check_checkpoint reports
        (ambiguous if permuted == stored else restored).append(name)
    source = checkpoint.get(SOURCE_KEY, 'the checkpoint')
    if ambiguous:
        raise CheckpointError(f'checkpoint {source} stores no module versions (PyTorch\'s state dict _metadata), and '
                              f'the layout of the spconv kernels of {", ".join(ambiguous)} (spconv 1 or 2) cannot be '
                              'told from their shapes: save the state dict as model.state_dict() returns it')
    if restored:
        if metadata is None:
            state = checkpoint['state_dict'] = OrderedDict(state)
            metadata = state._metadata = OrderedDict()
        for name in restored:
            metadata[name] = dict(metadata.get(name, {}), version=SPCONV_VERSION)
        print_log(f'checkpoint {source} stores no module versions: the {len(restored)} spconv kernels are read in '
                  'the spconv 2 layout their shapes show', logger='current', level=logging.WARNING)
    return restored


def _sha256(lines: Iterable[str]) -> str:
    return hashlib.sha256('\n'.join(lines).encode()).hexdigest()


def model_signature(model: torch.nn.Module) -> dict:
    """What a checkpoint of ``model`` must match.

    Returns:
        dict with ``state_dict_sha256`` (hash of the sorted ``name:shape`` lines of the state dict) and
        ``num_tensors``; with an LLM (``model.llm.tokenizer``) also ``llm_vocab_size`` (tokens, special ones
        included) and ``tokenizer_sha256`` (hash of the token -> id table).
    """
    state = model.state_dict()
    signature = dict(state_dict_sha256=_sha256(f'{k}:{tuple(v.shape)}' for k, v in sorted(state.items())),
                     num_tensors=len(state))
    tokenizer = getattr(getattr(model, 'llm', None), 'tokenizer', None)
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        signature.update(llm_vocab_size=len(vocab),
                         tokenizer_sha256=_sha256(f'{token}:{i}' for token, i in sorted(vocab.items())))
    return signature


def checkpoint_state_dict(checkpoint: dict) -> OrderedDict:
    """The checkpoint's state dict with the model-wrapper prefix ``module.`` removed, as MMEngine loads it,
    keeping its ``_metadata`` (module versions: spconv's loader permutes kernels of version-less ones)."""
    state = checkpoint['state_dict']
    revised = OrderedDict((WRAPPER_PREFIX.sub('', key), value) for key, value in state.items())
    revised._metadata = getattr(state, '_metadata', OrderedDict())
    return revised


def _listing(kind: str, keys: List[str], limit: Optional[int]) -> List[str]:
    """``['<n> <kind>: k1, k2, ...']`` (the first ``limit`` keys; all when None), or ``[]`` without keys."""
    if not keys:
        return []
    shown = keys if limit is None else keys[:limit]
    more = f', ... ({len(keys) - len(shown)} more)' if len(shown) < len(keys) else ''
    return [f'{len(keys)} {kind}: {", ".join(shown)}{more}']


def checkpoint_mismatches(model: torch.nn.Module, checkpoint: dict, limit: Optional[int] = LISTED_KEYS) -> List[str]:
    """Lines describing how ``checkpoint`` differs from ``model``: missing and unexpected keys, shape
    mismatches, another tokenizer; ``[]`` when it fits. ``limit`` keys are named per kind."""
    expected, loaded = model.state_dict(), checkpoint_state_dict(checkpoint)
    shapes = [f'{k} {tuple(loaded[k].shape)} in the checkpoint, {tuple(v.shape)} in the model'
              for k, v in expected.items() if k in loaded and tuple(loaded[k].shape) != tuple(v.shape)]
    lines = (_listing('missing keys (in the model, not in the checkpoint)',
                      [k for k in expected if k not in loaded], limit)
             + _listing('unexpected keys (in the checkpoint, not in the model)',
                        [k for k in loaded if k not in expected], limit)
             + _listing('shape mismatches', shapes, limit))
    return lines + _signature_mismatches(checkpoint.get('meta', {}).get(SIGNATURE_KEY), model_signature(model))


def _signature_mismatches(stored: Optional[dict], current: dict) -> List[str]:
    """Lines for a stored :func:`model_signature` that differs from the model's (none for old checkpoints)."""
    if not stored:
        return []
    lines = []
    if stored['state_dict_sha256'] != current['state_dict_sha256']:
        lines.append(f'model signature {stored["state_dict_sha256"][:12]} ({stored["num_tensors"]} tensors) in '
                     f'the checkpoint, {current["state_dict_sha256"][:12]} ({current["num_tensors"]}) for the model')
    if stored.get('tokenizer_sha256') != current.get('tokenizer_sha256'):
        lines.append(f'another LLM tokenizer: {stored.get("llm_vocab_size")} tokens in the checkpoint, '
                     f'{current.get("llm_vocab_size")} for the model (model.llm.llm_path / tokenizer_path of the '
                     'config), or the same number of tokens with other ids')
    return lines


def check_checkpoint(model: torch.nn.Module, checkpoint: dict, allow_partial: bool = False) -> None:
    """Compare a loaded checkpoint (:func:`load_checkpoint_file`) with ``model`` before its weights are copied
    (restoring spconv module versions a state dict lost first: :func:`restore_spconv_versions`).

    Raises:
        CheckpointError: naming the file and listing the mismatches, unless ``allow_partial``; then the full
            lists are logged as a warning (those weights keep the model's initial values).
    """
    source = checkpoint.get(SOURCE_KEY, 'the checkpoint')
    restore_spconv_versions(model, checkpoint)
    if SIGNATURE_KEY not in checkpoint.get('meta', {}):
        print_log(f'checkpoint {source} stores no model signature (saved before DrivePI stored one): checked by '
                  'its keys and shapes only', logger='current')
    problems = checkpoint_mismatches(model, checkpoint, limit=None if allow_partial else LISTED_KEYS)
    if not problems:
        return
    report = f'checkpoint {source} does not match the model:\n  ' + '\n  '.join(problems)
    if not allow_partial:
        raise CheckpointError(f'{report}\nIt was saved from another config or model. To load only the matching '
                              'weights on purpose (e.g. a new head), pass --allow-partial.')
    print_log(f'{report}\nPartial loading (--allow-partial): the weights above were NOT loaded.', logger='current',
              level=logging.WARNING)


def load_model_checkpoint(model: torch.nn.Module, filename, allow_partial: bool = False) -> dict:
    """Read ``filename`` safely, check it against ``model`` and copy its weights in (outside a Runner).

    Returns:
        the checkpoint dict.
    """
    checkpoint = load_checkpoint_file(filename, map_location='cpu')
    check_checkpoint(model, checkpoint, allow_partial)
    load_state_dict(model, checkpoint_state_dict(checkpoint), strict=False)
    return checkpoint


def add_checkpoint_check(cfg, allow_partial: bool = False) -> None:
    """Give a Runner config (``Config`` or dict) a :class:`CheckpointCheckHook` in ``custom_hooks`` if it has none;
    ``allow_partial`` (``--allow-partial``) turns partial loading on (a config may also set the hook's own)."""
    hooks = list(cfg.get('custom_hooks', []))
    checks = [hook for hook in hooks if isinstance(hook, dict) and hook.get('type') == CheckpointCheckHook.__name__]
    if not checks:
        hooks.append(dict(type=CheckpointCheckHook.__name__))
        checks = hooks[-1:]
    if allow_partial:
        checks[0]['allow_partial'] = True
    cfg['custom_hooks'] = hooks


@contextmanager
def _plain_model(model: torch.nn.Module):
    """The Runner's model as its checkpoints see it: ``state_dict()`` under the plain names and shapes. A DDP
    wrapper is removed; an FSDP model (drivepi/engine/fsdp.py), whose inner modules hold flattened shards, keeps
    its root and gives its sharded state dict meanwhile (the full shapes, nothing gathered)."""
    if isinstance(model, FullyShardedDataParallel):
        with FullyShardedDataParallel.state_dict_type(model, StateDictType.SHARDED_STATE_DICT):
            yield model
    else:
        yield model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Signs every checkpoint the Runner saves and checks every checkpoint it loads against the model.

    Args:
        allow_partial: load a checkpoint that does not match, listing what was not loaded, instead of failing.
    """
    priority = 'VERY_HIGH'

    def __init__(self, allow_partial: bool = False) -> None:
        self.allow_partial = allow_partial

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        with _plain_model(runner.model) as model:
            checkpoint['meta'][SIGNATURE_KEY] = model_signature(model)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        with _plain_model(runner.model) as model:
            check_checkpoint(model, checkpoint, self.allow_partial)
