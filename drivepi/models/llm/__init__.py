"""The language model of DrivePI: Qwen2 wrapper (the only module that touches Hugging Face), projector, prompt.

The tiny test checkpoint lives in :mod:`drivepi.testing`.
"""
from .projector import MLPProjector
from .prompt import IGNORE_INDEX, DrivePIPrompt, PromptBatch
from .qwen2_llm import Qwen2LLM
from .spatial_position import BEVPositionEmbedding
from .special_tokens import PLAN_TOKEN, SPATIAL_TOKEN

__all__ = ['MLPProjector', 'BEVPositionEmbedding', 'IGNORE_INDEX', 'DrivePIPrompt', 'PromptBatch', 'Qwen2LLM',
           'PLAN_TOKEN', 'SPATIAL_TOKEN']
