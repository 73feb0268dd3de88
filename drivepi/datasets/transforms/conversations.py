"""Conversations of a sample, from the QA file's schema to the data-sample layout."""
from typing import Optional, Sequence

from mmcv.transforms import BaseTransform

from drivepi.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadConversations(BaseTransform):
    """Turn ``results['conversations']`` (``drivepi.datasets.qa_schema.QAConversation`` objects, attached
    by the dataset) into lists of turns ``{question, answer, type, family}`` (docs/contracts.md);
    an empty list when the sample has none.

    Args:
        families: keep only conversations of these families (None keeps all).
    """

    def __init__(self, families: Optional[Sequence[str]] = None):
        self.families = None if families is None else tuple(families)

    def transform(self, results: dict) -> dict:
        results['conversations'] = [conversation.as_turn_dicts() for conversation in results.get('conversations', [])
                                    if self.families is None or conversation.family in self.families]
        return results
