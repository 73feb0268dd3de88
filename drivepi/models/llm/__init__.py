"""The language model of DrivePI: Qwen2 wrapper, projector, prompt, tiny test checkpoint."""
from .projector import MLPProjector
from .prompt import IGNORE_INDEX, DrivePIPrompt, PromptBatch
from .qwen2_llm import Qwen2LLM
from .spatial_position import BEVPositionEmbedding
from .special_tokens import PLAN_TOKEN, SPATIAL_TOKEN
from .tiny_llm import make_tiny_llm

__all__ = ['MLPProjector', 'BEVPositionEmbedding', 'IGNORE_INDEX', 'DrivePIPrompt', 'PromptBatch', 'Qwen2LLM', 'PLAN_TOKEN',
           'SPATIAL_TOKEN', 'make_tiny_llm']
