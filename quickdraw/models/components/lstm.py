"""A stroke-sequence classifier: pen moves -> 1D convolutions -> bidirectional LSTM (or GRU) -> pooled logits.

The architecture of Google's tutorial "Recurrent Neural Networks for Drawing Classification"
(TensorFlow tutorials, the Quick, Draw! RNN): per-point (dx, dy, pen_up) features
([`quickdraw.data.sequence`][quickdraw.data.sequence]), a stack of 1D convolutions over time (48, 64, 96 channels with
kernels 5, 5, 3 there), a bidirectional recurrent stack (3 LSTM layers of 128 units there), the
outputs pooled over each drawing's valid steps, and a linear layer to the classes. The tutorial
sums the outputs over time; this takes their mean, so the logits' scale does not grow with a
drawing's length (a 10-point and a 120-point drawing give inputs of the same size to `fc`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from quickdraw.core.errors import SettingError

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class StrokeRNN(nn.Module):
    """`forward((points (B, T, F), lengths (B,)))` -> (B, num_classes) logits."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        conv_channels: Sequence[int] = (48, 64, 96),
        kernel_sizes: Sequence[int] = (5, 5, 3),
        hidden: int = 128,
        layers: int = 3,
        cell: str = "lstm",
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise SettingError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if len(conv_channels) != len(kernel_sizes):
            raise SettingError("conv_channels and kernel_sizes need one entry per convolution")
        # Batch normalisation after each convolution (the tutorial's --batch_norm option): the
        # moves are small numbers (a few hundredths of the frame), and without it the stack
        # barely learns in the first hundreds of steps.
        convs: list[nn.Module] = []
        width = in_channels
        for channels, k in zip(conv_channels, kernel_sizes, strict=True):
            # Odd kernels, "same" padding: step t's features come from the points around t.
            conv = nn.Conv1d(width, channels, k, padding=k // 2, bias=False)
            convs.append(nn.Sequential(conv, nn.BatchNorm1d(channels), nn.ReLU(inplace=True)))
            width = channels
        self.convs = nn.ModuleList(convs)
        self.dropout = nn.Dropout(dropout)
        self.rnn = CELLS[cell](
            width, hidden, num_layers=layers, batch_first=True, bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )  # fmt: skip
        self.num_features = 2 * hidden
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """(B, 2 * hidden) outputs of the recurrent stack, averaged over each drawing's steps."""
        points, lengths = x
        # An empty drawing (blank canvas) reads as one zero step rather than breaking the packing.
        lengths = lengths.clamp(min=1, max=max(points.shape[1], 1)).cpu()
        if points.shape[1] == 0:
            points = points.new_zeros(points.shape[0], 1, points.shape[2])
        steps = points.shape[1]
        mask = (torch.arange(steps)[None, :] < lengths[:, None]).to(points.device)
        # Steps past a drawing's end are zero going into and out of every convolution, whatever
        # the padding held: a drawing's output does not depend on its batch-mates' lengths.
        mask = mask[:, None, :].to(points.dtype)
        h = points.transpose(1, 2) * mask
        for block in self.convs:
            h = block(h) * mask
        h = self.dropout(h.transpose(1, 2))
        packed = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=steps)
        return out.sum(dim=1) / lengths.to(out.device, out.dtype)[:, None]

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        return self.fc(self.dropout(self.forward_features(x)))
