"""How data-loader workers hand their tensors to the main process.

A worker sends each tensor of a batch through shared memory. With torch's default strategy on Linux,
``file_descriptor``, the receiver fetches every tensor's file descriptor over a socket from the sending worker
(``multiprocessing.resource_sharer``): one connection per tensor, served by a thread of a worker that is busy
loading the next samples. A DrivePI test sample carries 13 tensors (points, images, occupancy, flow, camera
mask, trajectory and its mask, six future box sets), so a batch of 8 is 104 connections in the main process;
with ``file_system`` the receiver opens each by name instead. Measured on the 2-core project machine (one
process putting batches of 104 tensors of those shapes on a queue, the main process taking them off,
2026-12-07): 70-80 ms a batch with ``file_descriptor``, 15-26 ms with ``file_system``.

``file_system`` leaves named shared-memory files behind only when processes are killed before they free them;
torch's ``torch_shm_manager`` removes those once the last process of the group exits.
"""
import torch.multiprocessing
from mmengine.hooks import Hook

from drivepi.registry import HOOKS


@HOOKS.register_module()
class TensorSharingHook(Hook):
    """Sets torch's tensor sharing strategy before the run's data loaders start their workers.

    The workers are forked from the main process (``env_cfg.mp_cfg.mp_start_method='fork'``, the default of
    every DrivePI config) and inherit the strategy; the sender's strategy decides how a tensor travels.

    Args:
        strategy: one of ``torch.multiprocessing.get_all_sharing_strategies()``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, strategy: str = 'file_system') -> None:
        available = sorted(torch.multiprocessing.get_all_sharing_strategies())
        if strategy not in available:
            raise ValueError(f'TensorSharingHook: strategy must be one of {available}, got {strategy!r}')
        self.strategy = strategy

    def before_run(self, runner) -> None:
        torch.multiprocessing.set_sharing_strategy(self.strategy)
