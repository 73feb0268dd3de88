"""torch's CPU thread count, set for one block of code."""
from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run torch's CPU operations in one thread inside the block, in as many as before after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
