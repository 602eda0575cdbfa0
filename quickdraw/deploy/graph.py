"""The network as the ONNX export writes it: convolutions on small maps become matrix products.

onnxruntime's CPU kernels (MLAS, natively and compiled to WASM for onnxruntime-web) compute a
convolution as its weights `(O, C*kh*kw)` times the im2col matrix `(C*kh*kw, P)` of the `P`
output pixels, the pixels on the narrow side of the product. Where `P` is small, as on
ResNet18's 2 x 2 layer4 maps at 64 px, that product runs far below the kernel's speed. The same
convolution written as im2col `(P, C*kh*kw)` times the weights `(C*kh*kw, O)` (an ONNX
`MatMul` on a constant, which onnxruntime packs once at load) puts the output channels there.

Measured on ResNet18, 340 classes, batch 1, one thread, 2-core AMD EPYC (`python
-m benchmarks.export --skip parity,browser,server [--size 32]`; docs/results/export.md, "Export and
deploy"): at 64 px onnxruntime-web 22.0-29.1 -> 16.1-17.4 ms a pass, native onnxruntime
6.9-7.3 -> 6.2-6.5 ms; at 32 px 18.3-22.6 -> 5.0-7.9 ms and 2.6-2.8 -> 2.2-2.5 ms. Rewriting
layer3's 4 x 4 maps at 64 px too was slower, hence `MAX_PIXELS`. Kernel taps that read only
padding are left out: onnxruntime's own kernels skip them, and with them the 32 px network ran
natively at 4.1 against 2.2 ms. The outputs do not change beyond float rounding (~1e-6; the
products left out are products with zero; tests/deploy/test_export.py checks parity).

Stroke-sequence networks need a rewrite of another kind: PyTorch's `nn.MultiheadAttention`, traced
by the TorchScript exporter, fixes the number of points of the example drawing in its reshapes
(onnxruntime then refuses any other length), and in eval mode its fused kernel
(`aten::_transformer_encoder_layer_fwd`) has no ONNX form. [`attention_for_onnx`][quickdraw.deploy.graph.attention_for_onnx]
swaps each for [`SelfAttention`][quickdraw.deploy.graph.SelfAttention], the same products written with shapes read from
the input.
"""

from __future__ import annotations

import copy
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)

# Output maps with at most this many pixels are rewritten (see the module docstring).
MAX_PIXELS = 15


class Im2colConv(nn.Module):
    """A `Conv2d` (zero padding, no dilation, one group) for one input size, as im2col @ weights.

    `conv`: the convolution; `size`: its input `(H, W)` in px. Takes `(B, C, H, W)` float,
    returns `(B, O, Ho, Wo)` as `conv` would; the batch axis stays dynamic in ONNX. Kernel taps
    that only ever read the zero padding at this size are left out with their weights (on a 1 x 1
    map a 3 x 3 convolution keeps its centre tap: a ninth of the weights and multiply-adds).
    """

    def __init__(self, conv: nn.Conv2d, size: tuple[int, int]) -> None:
        super().__init__()
        out_ch, in_ch, kh, kw = conv.weight.shape
        self.stride, self.padding, self.size = conv.stride, conv.padding, tuple(size)
        self.out_size = output_size(conv, size)
        rows, cols = (
            [i for i in range(k) if any(0 <= i + s * o - p < n for o in range(m))]
            for k, s, p, n, m in zip((kh, kw), conv.stride, conv.padding, size, self.out_size, strict=True)
        )  # fmt: skip
        self.taps = [(i, j) for i in rows for j in cols]
        # (tap, C) rows in the order forward() stacks the im2col columns.
        weight = torch.cat([conv.weight.detach()[:, :, i, j].t() for i, j in self.taps])
        self.register_buffer("weight", weight.contiguous())  # (taps * C, O)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(out_ch)
        self.register_buffer("bias", bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and tuple(x.shape[-2:]) != self.size:  # ONNX fixes H, W
            raise ValueError(f"made for {self.size} px inputs, got {tuple(x.shape[-2:])}")
        (sh, sw), (ph, pw), (ho, wo) = self.stride, self.padding, self.out_size
        x = F.pad(x, (pw, pw, ph, ph))
        taps = [x[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
                for i, j in self.taps]  # fmt: skip
        cols = torch.cat(taps, dim=1).flatten(2).transpose(1, 2)  # (B, Ho*Wo, taps*C)
        out = cols @ self.weight + self.bias  # (B, Ho*Wo, O)
        return out.transpose(1, 2).reshape(-1, self.weight.shape[1], ho, wo)


def output_size(conv: nn.Conv2d, size: tuple[int, int]) -> tuple[int, int]:
    """`conv`'s output `(Ho, Wo)` in px for an input of `size` px."""
    return tuple(  # type: ignore[return-value]
        (n + 2 * p - k) // s + 1
        for n, p, k, s in zip(size, conv.padding, conv.kernel_size, conv.stride, strict=True)
    )


def for_onnx(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of `module` with each convolution whose output map has at most `MAX_PIXELS`
    pixels, for inputs shaped like `example`, replaced by an [`Im2colConv`][quickdraw.deploy.graph.Im2colConv]; a BatchNorm
    that reads such a convolution's output is folded into it (onnxruntime folds a BatchNorm into
    a `Conv` at load, not into a `MatMul`, and int8 quantisation would leave it in float).

    Convolutions it cannot rewrite (dilated, grouped, non-zero or string padding) stay as they are.
    The copy is checked against `module` on a random input: where folding changed the outputs (a
    convolution's output also read elsewhere than by its BatchNorm), the copy is made again
    without folding; where that fails too (a convolution's weight also used outside it, say), the
    module is exported as it is, with a warning in the log.
    """
    module = copy.deepcopy(module).eval()
    small, folds = _small_convs(module, example)
    if not small:
        return module
    check = (torch.rand(example.shape, device=example.device) * 255).to(example.dtype)
    with torch.no_grad():
        reference = module(check)
        for fold in (folds, {}):
            rewritten = _rewrite(copy.deepcopy(module), small, fold)
            try:
                got = rewritten(check)
            except (RuntimeError, ValueError) as e:
                failure = f"it failed: {e}"
                continue
            if torch.allclose(got, reference, rtol=1e-4, atol=1e-4):
                return rewritten
            failure = f"the outputs changed (max diff {(got - reference).abs().max().item():.2e})"
    log.warning("convolutions on small maps left as Conv (slower under onnxruntime): rewriting "
                "%s as MatMul, %s", ", ".join(small), failure)  # fmt: skip
    return module


class SelfAttention(nn.Module):
    """A batch-first `nn.MultiheadAttention` used as self-attention, for any number of points.

    Takes `(B, T, D)` queries (keys and values the same tensor, as in an encoder layer) and an
    optional float `key_padding_mask` `(B, T)` (-inf on padding, what `nn.TransformerEncoder`
    passes its layers); returns `((B, T, D), None)` as the module would with `need_weights=False`.
    Reads the module's own parameters (no copy).
    """

    batch_first = True  # read by nn.TransformerEncoder before it picks a path

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        self.heads, self.in_proj_weight = mha.num_heads, mha.in_proj_weight
        self.in_proj_bias, self.out_proj = mha.in_proj_bias, mha.out_proj

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False,
                attn_mask=None, is_causal=False):  # fmt: skip
        if attn_mask is not None or is_causal:
            raise ValueError("SelfAttention exports encoder self-attention without attn_mask")
        q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # (B, T, D) -> (B, heads, T, D / heads); -1 keeps B and T read from the input.
        q, k, v = (x.unflatten(-1, (self.heads, -1)).transpose(1, 2) for x in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if key_padding_mask is not None:
            scores = scores + key_padding_mask[:, None, None, :].to(scores.dtype)
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).flatten(2)
        return self.out_proj(out), None


def attention_for_onnx(module: nn.Module) -> nn.Module:
    """A copy of `module` with every batch-first self-attention (`nn.MultiheadAttention` with one
    embedding size for queries, keys and values, and biases) a [`SelfAttention`][quickdraw.deploy.graph.SelfAttention]; `module` is
    returned as it is when it has none. Export it with the fused kernel off
    (`torch.backends.mha.set_fastpath_enabled(False)`), as `quickdraw.deploy.onnx` does."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.MultiheadAttention)
             and m.batch_first and m._qkv_same_embed_dim and m.in_proj_bias is not None
             and m.bias_k is None and not m.add_zero_attn]  # fmt: skip
    if not names:
        return module
    module = copy.deepcopy(module).eval()
    for name in names:
        _replace(module, name, SelfAttention(module.get_submodule(name)))
    return module


def _small_convs(module: nn.Module, example: torch.Tensor) -> tuple[dict, dict]:
    """{conv name: input size} of the convolutions to rewrite, {conv name: BatchNorm name} of the
    BatchNorms that read their outputs, from one pass over `example` with hooks."""
    convs = {n: m for n, m in module.named_modules() if _rewritable(m)}
    norms = {n: m for n, m in module.named_modules()
             if type(m) is nn.BatchNorm2d and m.running_mean is not None}  # fmt: skip
    sizes: dict[str, list] = {n: [] for n in convs}  # the input sizes each was called on
    made: dict[int, str] = {}  # id of a conv's output -> the conv
    reads: dict[str, list] = {n: [] for n in norms}  # the conv whose output each BatchNorm read
    keep: list[torch.Tensor] = []  # holds the outputs so that their ids stay unique during the pass

    def conv_hook(name):
        def hook(m, args, out):
            sizes[name].append(tuple(args[0].shape[-2:]))
            made[id(out)] = name
            keep.append(out)

        return hook

    def norm_hook(name):
        return lambda m, args: reads[name].append(made.get(id(args[0])))

    hooks = [m.register_forward_hook(conv_hook(n)) for n, m in convs.items()]
    hooks += [m.register_forward_pre_hook(norm_hook(n)) for n, m in norms.items()]
    with torch.no_grad():
        module(example)
    for hook in hooks:
        hook.remove()
    # One input size (a module called on two keeps its Conv); the map under MAX_PIXELS.
    small = {n: seen[0] for n, seen in sizes.items()
             if len(set(seen)) == 1 and _pixels(output_size(convs[n], seen[0])) <= MAX_PIXELS}  # fmt: skip
    # A conv called once, read by a BatchNorm called once: the pair folds into one affine map.
    folds = {reads[b][0]: b for b in norms if len(reads[b]) == 1 and reads[b][0] in small
             and len(sizes[reads[b][0]]) == 1}  # fmt: skip
    return small, folds


def _rewrite(module: nn.Module, small: dict, folds: dict) -> nn.Module:
    for name, size in small.items():
        conv = module.get_submodule(name)
        if name in folds:
            conv = fuse_conv_bn_eval(conv, module.get_submodule(folds[name]))
            _replace(module, folds[name], nn.Identity())
        _replace(module, name, Im2colConv(conv, size))
    return module


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(parent), leaf, new)


def _rewritable(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.groups == 1
        and m.dilation == (1, 1)
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
    )


def _pixels(size: tuple[int, int]) -> int:
    return size[0] * size[1]
