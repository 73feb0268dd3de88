"""Conversations of a sample, from the QA file's schema to the data-sample layout."""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from drivepi.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadConversations(BaseTransform):
    """Turn ``results['conversations']`` (``drivepi.datasets.qa_schema.QAConversation`` objects, attached
    by the dataset) into lists of turns ``{question, answer, type, family}`` (docs/contracts.md);
    an empty list when the sample has none.

    Training puts a sample's conversations one after another in one LLM sequence, while ``predict``
    answers each conversation right after the prompt prefix. ``max_conversations`` (training) keeps a
    random subset in random order, so every family is also trained right after the prefix, as it is
    evaluated; without it all conversations are kept in file order (testing).

    Args:
        families: keep only conversations of these families (None keeps all).
        max_conversations: keep at most this many, randomly chosen and shuffled (None keeps all in order).
    """

    def __init__(self, families: Optional[Sequence[str]] = None, max_conversations: Optional[int] = None):
        if max_conversations is not None and max_conversations < 1:
            raise ValueError(f'max_conversations must be at least 1, got {max_conversations}')
        self.families = None if families is None else tuple(families)
        self.max_conversations = max_conversations

    def transform(self, results: dict) -> dict:
        conversations = [conversation.as_turn_dicts() for conversation in results.get('conversations', [])
                         if self.families is None or conversation.family in self.families]
        if self.max_conversations is not None:
            order = np.random.permutation(len(conversations))[:self.max_conversations]
            conversations = [conversations[i] for i in order]
        results['conversations'] = conversations
        return results
