"""Deploy the model (LoRA merged, eval mode) before a test run of the MMEngine Runner."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from drivepi.registry import HOOKS


@HOOKS.register_module()
class DeployModelHook(Hook):
    """Calls ``DrivePI.deploy()`` after the checkpoint is loaded and before testing starts.

    For ``tools/test.py`` runs only: merging LoRA adapters cannot be undone, so training must not follow.
    """

    def before_test(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.deploy()
