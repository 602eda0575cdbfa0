"""The export's graph rewrite: small-map convolutions become MatMuls and compute the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from quickdraw.deploy.graph import Im2colConv, for_onnx

ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
onnx = pytest.importorskip("onnx", reason="the export extra is not installed")


def resnet18(size: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):  # not the identity BN
        (
            bn.running_mean.normal_(0, 0.1),
            bn.running_var.uniform_(0.5, 2),
            bn.weight.data.normal_(1, 0.1),
        )
    return net.eval(), torch.rand(3, 3, size, size)


def rewritten(net: nn.Module) -> list[str]:
    return [n for n, m in net.named_modules() if isinstance(m, Im2colConv)]


def test_resnet18_at_64_px_rewrites_layer4_only_and_keeps_its_outputs():
    net, x = resnet18(64)
    fast = for_onnx(net, x[:1])
    assert rewritten(fast) == ["layer4.0.conv1", "layer4.0.conv2", "layer4.0.downsample.0",
                               "layer4.1.conv1", "layer4.1.conv2"]  # fmt: skip
    assert isinstance(fast.layer4[0].bn1, nn.Identity)  # folded into the MatMul's weights
    assert isinstance(net.layer4[0].conv1, nn.Conv2d)  # the original is left as it was
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x), atol=1e-5)
    # 32 px: layer3's maps are 2 x 2 too, layer4's 1 x 1, where a 3 x 3 convolution keeps only the
    # taps that read the map (the rest read padding); 128 px: no map under 16 pixels.
    small = for_onnx(net, x32 := torch.rand(3, 3, 32, 32))
    assert len(rewritten(small)) == 10
    assert small.layer4[1].conv1.taps == [(1, 1)] and small.layer4[1].conv1.weight.shape == (
        512,
        512,
    )
    assert small.layer4[0].conv1.taps == [(1, 1), (1, 2), (2, 1), (2, 2)]  # stride 2 from 2 x 2
    with torch.no_grad():
        assert torch.allclose(small(x32), net(x32), atol=1e-5)
    assert rewritten(for_onnx(net, torch.rand(1, 3, 128, 128))) == []


@pytest.mark.filterwarnings("ignore:Constant folding")
def test_the_rewritten_graph_runs_in_onnxruntime_with_any_batch(tmp_path):
    net, x = resnet18(64)
    fast = for_onnx(net, x[:1])
    path = tmp_path / "m.onnx"
    torch.onnx.export(fast, (x[:1],), str(path), input_names=["x"], dynamic_axes={"x": {0: "b"}},
                      opset_version=18, dynamo=False)  # fmt: skip
    session = ort.InferenceSession(str(path))
    graph = onnx.load(str(path)).graph
    assert sum(n.op_type == "MatMul" for n in graph.node) == 5
    assert sum(n.op_type == "Conv" for n in graph.node) == 15
    with torch.no_grad():
        want = net(x).numpy()
    got = session.run(None, {"x": x.numpy()})[0]
    assert got.shape == (3, 10) and np.abs(got - want).max() <= 1e-4


def test_convs_it_cannot_rewrite_stay_and_a_shared_output_is_not_folded():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
            self.shared = nn.Conv2d(4, 4, 1)  # called on two sizes
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4).eval()
            self.bn.running_mean.fill_(0.5)

        def forward(self, x):
            small = nn.functional.avg_pool2d(x, 2)
            y = self.conv(self.shared(small))
            # The conv's output is read by the BatchNorm and also added: folding would change it.
            return (
                self.grouped(small).mean((2, 3))
                + self.shared(x).mean((2, 3))
                + (self.bn(y) + y).mean((2, 3))
            )

    net, x = Odd().eval(), torch.rand(2, 4, 4, 4)
    fast = for_onnx(net, x)
    assert rewritten(fast) == ["conv"]  # grouped and shared (2 x 2 maps too) stay Conv2d
    assert isinstance(fast.bn, nn.BatchNorm2d)  # not folded: the outputs would have changed
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x), atol=1e-6)


def test_a_rewrite_that_cannot_hold_leaves_the_module_as_it_is(caplog):
    class Tied(nn.Module):  # the conv's weight is also used outside it
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(x) + nn.functional.conv2d(x, self.conv.weight, padding=1)

    net, x = Tied().eval(), torch.rand(2, 3, 3, 3)
    with caplog.at_level("WARNING"):
        kept = for_onnx(net, x)
    assert rewritten(kept) == [] and "left as Conv" in caplog.text
    with torch.no_grad():
        assert torch.equal(kept(x), net(x))


def test_batchnorms_without_running_statistics_are_not_folded_and_sizes_are_checked():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False))
    x = torch.rand(2, 3, 3, 3)
    fast = for_onnx(net.eval(), x)
    assert rewritten(fast) == ["0"] and isinstance(fast[1], nn.BatchNorm2d)
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x), atol=1e-5)
    with pytest.raises(ValueError, match=r"made for \(3, 3\) px inputs, got \(5, 5\)"):
        fast(torch.rand(1, 3, 5, 5))
