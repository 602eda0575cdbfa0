"""A stroke-sequence Transformer: pen moves -> point embedding + positions -> encoder -> pooled logits.

The sibling of [`StrokeRNN`][quickdraw.models.components.lstm.StrokeRNN] on the same input, the
per-point (dx, dy, pen_up) moves of [`quickdraw.data.sequence`][quickdraw.data.sequence], after the
encoders of Sketchformer (Ribeiro et al., "Sketchformer: Transformer-based representation for
sketched structure", CVPR 2020) and Sketch-BERT (Lin et al., "Sketch-BERT: Learning sketch
bidirectional encoder representation from transformers by self-supervised learning of sketch
gestalt", CVPR 2020): each point embedded by a linear layer, sinusoidal positions added
(Vaswani et al. 2017; Sketchformer's choice, and no length limit), a few pre-norm encoder
layers that attend over the drawing's real points only (a padding mask), and the outputs
averaged over those points. Both papers pretrain on the full data set; this trains from
scratch on the classification loss alone, like the LSTM.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from quickdraw.core.errors import SettingError


class StrokeTransformer(nn.Module):
    """`forward((points (B, T, F), lengths (B,)))` -> (B, num_classes) logits.

    d_model: width of the point embedding and of every layer; heads: attention heads (must
    divide d_model); layers: encoder layers; ff: width of each layer's feed-forward block.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        d_model: int = 128,
        heads: int = 4,
        layers: int = 4,
        ff: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if d_model % heads:
            raise SettingError(f"heads={heads} must divide d_model={d_model}")
        if d_model % 2:
            raise SettingError(f"d_model={d_model} must be even (sine and cosine positions)")
        self.embed = nn.Sequential(nn.Linear(in_channels, d_model), nn.LayerNorm(d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # enable_nested_tensor=False: the nested-tensor fast path does not apply to pre-norm
        # layers and warns about it at every construction.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.num_features = d_model
        self.fc = nn.Linear(d_model, num_classes)

    def forward_features(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """(B, d_model) encoder outputs averaged over each drawing's points (padding left out)."""
        points, lengths = x
        # An empty drawing (blank canvas) reads as one zero point, as in StrokeRNN: a row with
        # every key masked would make attention's softmax 0/0.
        if points.shape[1] == 0:
            points = points.new_zeros(points.shape[0], 1, points.shape[2])
        steps = points.shape[1]
        lengths = lengths.to(points.device).clamp(min=1, max=steps)
        padding = torch.arange(steps, device=points.device)[None, :] >= lengths[:, None]
        h = self.embed(points) + positions(steps, self.num_features, points.device, points.dtype)
        h = self.encoder(self.dropout(h), src_key_padding_mask=padding)
        keep = (~padding)[..., None].to(h.dtype)
        return (self.norm(h) * keep).sum(dim=1) / lengths[:, None].to(h.dtype)

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        return self.fc(self.dropout(self.forward_features(x)))


def positions(steps: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """(1, steps, width) sinusoidal position codes (Vaswani et al. 2017, section 3.5)."""
    pos = torch.arange(steps, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width)
    )
    codes = torch.zeros(steps, width, device=device)
    codes[:, 0::2], codes[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return codes[None].to(dtype)
