"""Validation figures for TensorBoard: the most-confused corner of the confusion matrix and labelled samples.

With hundreds of classes a full confusion matrix is an unreadable grey square; the errors that
matter sit among a few look-alike classes (cup / coffee cup / mug), so only those are drawn.
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from torch import Tensor

# Figures are made as Figure objects, not through pyplot: no display needed on training nodes, and
# no backend chosen for whoever imports this (a notebook keeps its inline figures).


def most_confused(confmat: Tensor, n: int = 15) -> Tensor:
    """Indices of the n classes involved in the most errors, as true or as predicted class."""
    errors = confmat.clone().float()
    errors.fill_diagonal_(0)
    involvement = errors.sum(0) + errors.sum(1)
    return involvement.topk(min(n, len(involvement))).indices.sort().values


def confusion_figure(confmat: Tensor, classes: list[str], n: int = 15) -> Figure:
    """Row-normalised confusion matrix (rows: true class) restricted to the most-confused classes.

    Rows are normalised over all predictions, so a row's visible cells need not sum to 1: the
    remainder went to classes outside the picture.
    """
    confmat = confmat.detach().cpu()
    idx = most_confused(confmat, n)
    rates = confmat.float() / confmat.sum(1, keepdim=True).clamp(min=1)
    sub = rates[idx][:, idx].numpy()
    names = [classes[i] for i in idx.tolist()]
    size = 2.0 + 0.45 * len(names)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.subplots()
    im = ax.imshow(sub, cmap="Blues", vmin=0.0, vmax=max(float(sub.max()), 1e-6))
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            if sub[i, j] >= 0.01:
                color = "white" if sub[i, j] > 0.5 * sub.max() else "black"
                ax.text(j, i, f"{sub[i, j]:.2f}", ha="center", va="center", fontsize=6, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(f"confusion among the {len(names)} most-confused classes")
    fig.tight_layout()
    return fig


def prediction_grid(images: Tensor, preds: Tensor, target: Tensor, classes: list[str]) -> Figure:
    """Grid of input images titled 'predicted (true)', green when right and red when wrong."""
    images = images.detach().cpu()
    n = len(images)
    cols = min(8, n)
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(1.6 * cols, 1.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, p, t in zip(axes.flat, images, preds.tolist(), target.tolist(), strict=False):
        ax.imshow(_displayable(img), cmap="gray_r" if img.shape[0] == 1 else None, vmin=0, vmax=1)
        title = classes[p] if p == t else f"{classes[p]}\n({classes[t]})"
        ax.set_title(title, fontsize=7, color="green" if p == t else "red")
    fig.suptitle("predicted (true class when wrong)", fontsize=9)
    fig.tight_layout()
    return fig


class SampleReservoir:
    """A fixed-size uniform sample of (image, pred, target) over a whole validation epoch.

    Validation loaders may serve classes in blocks, so the first batch alone could show one
    class. Each image gets a random key from a generator reseeded every epoch; the n smallest
    keys win, which picks the same images every epoch when the loader order is fixed, so the
    grids of successive epochs can be compared.
    """

    def __init__(self, n: int = 32, seed: int = 0) -> None:
        self.n, self.seed = n, seed
        self.reset()

    def reset(self) -> None:
        self.gen = torch.Generator().manual_seed(self.seed)
        self.keys = torch.empty(0)
        self.images: Tensor | None = None
        self.preds = torch.empty(0, dtype=torch.long)
        self.target = torch.empty(0, dtype=torch.long)

    def add(self, images: Tensor, preds: Tensor, target: Tensor) -> None:
        keys = torch.cat([self.keys, torch.rand(len(images), generator=self.gen)])
        keep = keys.topk(min(self.n, len(keys)), largest=False).indices
        old = len(self.keys)
        new = keep[keep >= old] - old  # only the winners of this batch leave the device
        batch = (images[new].cpu(), preds[new].cpu(), target[new].cpu())
        stored = keep[keep < old]
        self.images = (
            batch[0] if self.images is None else torch.cat([self.images[stored], batch[0]])
        )
        self.preds = torch.cat([self.preds[stored], batch[1]])
        self.target = torch.cat([self.target[stored], batch[2]])
        self.keys = torch.cat([self.keys[stored], keys[old:][new]])


def _displayable(img: Tensor) -> Tensor:
    """(C, H, W) uint8 or [0, 1] float -> (H, W) or (H, W, 3) in [0, 1], ink dark on white."""
    img = img.float() / 255 if img.dtype == torch.uint8 else img.float()
    if img.shape[0] == 1:
        return img[0]  # gray_r already shows ink (high values) dark
    return 1.0 - img[:3].permute(1, 2, 0).clamp(0, 1)
