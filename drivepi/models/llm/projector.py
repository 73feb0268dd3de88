"""Token projector between the BEV feature space and the LLM embedding space (LLaVA-style MLP)."""
import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.registry import MODELS


@MODELS.register_module()
class MLPProjector(BaseModule):
    """Two-layer MLP with GELU: (..., in_channels) -> (..., out_channels).

    Args:
        in_channels: input feature size (e.g. BEV channels, or the LLM hidden size when projecting back).
        out_channels: output feature size.
        hidden_channels: width of the hidden layer; defaults to ``out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        hidden_channels = hidden_channels or out_channels
        self.in_channels = in_channels
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.GELU(),
                                 nn.Linear(hidden_channels, out_channels))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[-1] != self.in_channels:
            raise ValueError(f'MLPProjector expects (..., {self.in_channels}) tokens, got {tuple(tokens.shape)}')
        return self.mlp(tokens)
