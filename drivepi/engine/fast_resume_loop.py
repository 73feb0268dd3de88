"""Resume an iteration-based run without loading the batches it skips."""
import itertools

from mmengine.dataset import InfiniteSampler
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from drivepi.registry import LOOPS


class _SkipFirst:
    """An iterator that yields ``None`` ``n`` times, then the items of ``iterator``."""

    def __init__(self, iterator, n: int) -> None:
        self.iterator, self.n = iterator, n

    def __iter__(self):
        return self

    def __next__(self):
        if self.n:
            self.n -= 1
            return None
        return next(self.iterator)


@LOOPS.register_module()
class FastResumeIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop``, resumed at iteration ``k`` without loading ``k`` batches.

    MMEngine skips the batches a resumed run has already trained on by drawing them from the data loader
    (every sample read, decoded and transformed: minutes for a long run on a short preemptible job). With an
    ``InfiniteSampler`` the sample order is a function of the seed alone, so this loop fast-forwards the
    sampler's index stream by ``k x batch_size`` indices instead and starts a fresh loader iterator there: the
    resumed run trains on the same samples in the same order as an uninterrupted one (the random draws of
    the data augmentation restart from the workers' seeds). Any other sampler falls back to MMEngine's skip.
    """

    def run(self):
        sampler = self.dataloader.sampler
        if self._iter > 0 and isinstance(sampler, InfiniteSampler):
            done = self._iter * self.dataloader.batch_size
            sampler.indices = itertools.islice(sampler._indices_of_rank(), done, None)
            self.dataloader_iterator = _SkipFirst(_InfiniteDataloaderIterator(self.dataloader), self._iter)
        return super().run()
