"""Networks and the LightningModule: shapes, gradients, freezing, checkpoints, ensembles, overfitting."""

from __future__ import annotations

import math
import urllib.error
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from quickdraw.models import ClassWeightedCrossEntropy, QuickDrawModule
from quickdraw.models.components import Ensemble, resnet18
from quickdraw.models.components.resnet import FREEZE_GROUPS, adapt_input_conv

NUM_CLASSES, SIZE = 4, 32
CLASSES = ["horizontal", "diagonal", "vertical", "antidiagonal"]
RESNET = {"_target_": "quickdraw.models.components.resnet.resnet18", "stem": "imagenet"}
ADAMW = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-3}
ENSEMBLE = "quickdraw.models.components.ensemble.Ensemble"
WEIGHTS_FILE = "resnet18-f37072fd.pth"  # torchvision's file name for ResNet18_Weights.IMAGENET1K_V1


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny convolutions run faster on one thread; on a busy 2-core box two threads spin on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stroke_batches(
    num_batches: int, batch_size: int = 16, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """Doodle-like uint8 batches: class c is three jittered strokes at angle c * 45 degrees."""
    gen = torch.Generator().manual_seed(seed)
    n = num_batches * batch_size
    label = torch.arange(n) % NUM_CLASSES
    images = torch.zeros(n, 1, SIZE, SIZE, dtype=torch.uint8)
    t = torch.linspace(-1, 1, 4 * SIZE)
    for i in range(n):
        for _ in range(3):
            angle = label[i] * math.pi / NUM_CLASSES + 0.15 * torch.randn((), generator=gen)
            centre = SIZE * (0.3 + 0.4 * torch.rand(2, generator=gen))
            half = SIZE * (0.15 + 0.15 * torch.rand((), generator=gen))
            x = (centre[0] + half * t * torch.cos(angle)).long().clamp(0, SIZE - 1)
            y = (centre[1] + half * t * torch.sin(angle)).long().clamp(0, SIZE - 1)
            images[i, 0, y, x] = 255
    return [
        {"image": img, "label": lab, "key_id": key}
        for img, lab, key in zip(
            images.split(batch_size),
            label.split(batch_size),
            torch.arange(n).split(batch_size),
            strict=True,
        )
    ]


def loader(batches: list[dict[str, torch.Tensor]]) -> DataLoader:
    return DataLoader(batches, batch_size=None)  # the batches are already collated


def make_module(net: dict = RESNET, **kwargs) -> QuickDrawModule:
    return QuickDrawModule(
        net=net, optimizer=ADAMW, num_classes=NUM_CLASSES, classes=CLASSES, **kwargs
    )


def make_trainer(root: Path, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=root,
    )  # fmt: skip
    return L.Trainer(**{**defaults, **kwargs})


def assert_every_trainable_param_has_grad(model: torch.nn.Module, output: torch.Tensor) -> None:
    F.cross_entropy(output, torch.arange(len(output)) % output.shape[1]).backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert not missing, f"no gradient for {missing}"


# -- components -------------------------------------------------------------------------------------
@pytest.mark.parametrize("stem", ["imagenet", "small"])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_resnet18_shapes_and_gradients(stem, in_channels):
    model = resnet18(num_classes=5, in_channels=in_channels, stem=stem)
    x = torch.rand(2, in_channels, SIZE, SIZE)
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert model.forward_features(x).shape == (2, 512)
    assert_every_trainable_param_has_grad(model, out)


@pytest.mark.parametrize(("stem", "side"), [("imagenet", SIZE // 4), ("small", SIZE)])
def test_stem_decides_the_resolution_reaching_layer1(stem, side):
    # 7x7/2 conv + max-pool quarter the image; the small stem (3x3/1, no pool) keeps it whole.
    m = resnet18(3, stem=stem)
    assert m.maxpool(m.relu(m.bn1(m.conv1(torch.rand(1, 1, SIZE, SIZE))))).shape[-1] == side


@pytest.mark.parametrize("freeze", range(6))
def test_freeze_levels_freeze_exactly_the_documented_parts(freeze):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # freezing random weights warns; intended here
        model = resnet18(NUM_CLASSES, freeze=freeze)
    prefixes = tuple(f"{name}." for group in FREEZE_GROUPS[:freeze] for name in group)
    expected = {n for n, _ in model.named_parameters() if n.startswith(prefixes)}
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == expected
    model.train()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.training != f"{name}.".startswith(prefixes), name

    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(torch.rand(4, 1, SIZE, SIZE)), torch.arange(4)).backward()
    opt.step()
    after = model.state_dict()
    for key in before:  # parameters and BN running statistics alike
        assert torch.equal(before[key], after[key]) == key.startswith(prefixes), key


def test_freeze_without_pretrained_weights_warns():
    with pytest.warns(UserWarning, match="randomly initialised"):
        resnet18(NUM_CLASSES, freeze=1)
    with pytest.raises(ValueError, match="freeze"):
        resnet18(NUM_CLASSES, freeze=6)


def test_pretrained_offline_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(RuntimeError) as info:
        resnet18(NUM_CLASSES, pretrained=True)
    message = str(info.value)
    assert str(tmp_path / "checkpoints" / WEIGHTS_FILE) in message
    assert "pretrained=false" in message and "https://" in message


@pytest.mark.parametrize("in_channels", [1, 3])
def test_pretrained_weights_come_from_the_hub_cache(tmp_path, monkeypatch, in_channels):
    reference = torchvision.models.resnet18().state_dict()  # stands in for the ImageNet file
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference, tmp_path / "checkpoints" / WEIGHTS_FILE)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)  # must not download
    model = resnet18(NUM_CLASSES, in_channels=in_channels, pretrained=True)
    assert torch.equal(model.layer3[1].conv2.weight, reference["layer3.1.conv2.weight"])
    expected_conv1 = (
        reference["conv1.weight"].sum(1, keepdim=True)
        if in_channels == 1
        else reference["conv1.weight"]
    )
    assert torch.allclose(model.conv1.weight, expected_conv1)
    assert model.fc.out_features == NUM_CLASSES


def test_adapted_conv_responds_like_the_rgb_conv():
    # Inputs whose channels repeat a grey (1) or RGB (6 = RGBRGB) image give the RGB filters' response.
    weight = torch.randn(8, 3, 7, 7)
    grey = torch.rand(1, 1, 16, 16)
    expected = F.conv2d(grey.repeat(1, 3, 1, 1), weight)
    assert torch.allclose(F.conv2d(grey, adapt_input_conv(weight, 1)), expected, atol=1e-4)
    rgb = torch.rand(1, 3, 16, 16)
    expected = F.conv2d(rgb, weight)
    assert torch.allclose(
        F.conv2d(rgb.repeat(1, 2, 1, 1), adapt_input_conv(weight, 6)), expected, atol=1e-4
    )


@pytest.mark.parametrize("combine", ["mean", "head"])
def test_ensemble_shapes_outputs_and_gradients(combine):
    model = Ensemble(RESNET, num_classes=5, in_channels=1, num_members=3, combine=combine)
    x = torch.rand(2, 1, SIZE, SIZE)
    members, out = model.forward_members(x), model(x)
    assert members.shape == (3, 2, 5) and out.shape == (2, 5) and torch.isfinite(out).all()
    if combine == "mean":  # log of the mean probability
        assert torch.allclose(out, members.softmax(-1).mean(0).log(), atol=1e-5)
    else:  # the head starts as the average of the members' logits
        assert torch.allclose(out, members.mean(0), atol=1e-5)
    assert not torch.allclose(members[0], members[1])  # independent initialisations
    assert_every_trainable_param_has_grad(model, model(x))


def test_ensemble_frozen_members_train_only_the_head():
    model = Ensemble(
        RESNET, num_classes=5, in_channels=1, num_members=2, combine="head", freeze_members=True
    )
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "head.weight",
        "head.bias",
    }
    model.train()
    assert model.head.training and not any(m.training for m in model.members.modules())
    with pytest.warns(UserWarning, match="no trainable parameters"):
        Ensemble(
            RESNET, num_classes=5, in_channels=1, num_members=2, combine="mean", freeze_members=True
        )


# -- LightningModule --------------------------------------------------------------------------------
class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_module_overfits_a_few_batches(tmp_path):
    torch.manual_seed(0)
    recorder = LossRecorder()
    trainer = make_trainer(tmp_path, max_steps=24, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(make_module(), loader(stroke_batches(3)))
    start, end = sum(recorder.losses[:3]) / 3, sum(recorder.losses[-3:]) / 3
    assert end < 0.3 * start, recorder.losses


@pytest.fixture(scope="module")
def single_checkpoint(tmp_path_factory) -> Path:
    """A briefly trained single ResNet18 run, built from DictConfigs as Hydra would pass them."""
    root = tmp_path_factory.mktemp("single")
    torch.manual_seed(0)
    scheduler = {
        "_target_": "torch.optim.lr_scheduler.OneCycleLR",
        "_partial_": True,
        "max_lr": 3e-3,
        "interval": "step",
    }
    module = QuickDrawModule(
        net=OmegaConf.create(RESNET), optimizer=OmegaConf.create(ADAMW), scheduler=OmegaConf.create(scheduler),
        num_classes=NUM_CLASSES, classes=OmegaConf.create(CLASSES), raster={"size": SIZE, "encoding": "gray"},
    )  # fmt: skip
    assert type(module.hparams.net) is dict and type(module.hparams.classes) is list
    trainer = make_trainer(root, max_steps=4, enable_checkpointing=True)
    trainer.fit(module, loader(stroke_batches(2)), loader(stroke_batches(1, seed=1)))
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 4  # filled from the run length
    trainer.save_checkpoint(root / "single.ckpt")
    return root / "single.ckpt"


def test_checkpoint_reloads_with_weights_only_and_predicts_the_same(single_checkpoint):
    images = stroke_batches(1, seed=2)[0]["image"]
    restored = QuickDrawModule.load_from_checkpoint(single_checkpoint, weights_only=True)
    again = QuickDrawModule.load_from_checkpoint(single_checkpoint, weights_only=True)
    assert restored.classes == CLASSES and restored.hparams.raster == {
        "size": SIZE,
        "encoding": "gray",
    }
    probs = restored.predict_proba(images)
    assert torch.allclose(probs.sum(1), torch.ones(len(images)))
    assert torch.equal(probs, again.predict_proba(images))
    state = torch.load(single_checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(restored.net.fc.weight, state["net.fc.weight"])


def test_ensemble_members_load_from_single_model_checkpoints(single_checkpoint):
    single = QuickDrawModule.load_from_checkpoint(single_checkpoint, weights_only=True).eval()
    ensemble = Ensemble(
        RESNET, num_classes=NUM_CLASSES, in_channels=1, checkpoints=[str(single_checkpoint)] * 2
    )
    assert ensemble.num_members == 2
    x = torch.rand(3, 1, SIZE, SIZE)
    with torch.no_grad():
        members = ensemble.eval().forward_members(x)
        assert torch.equal(members[0], single.net(x)) and torch.equal(members[1], single.net(x))


def test_ensemble_rejects_files_that_are_not_member_checkpoints(single_checkpoint, tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.ckpt"):
        Ensemble(RESNET, num_classes=NUM_CLASSES, in_channels=1, checkpoints=[str(text)])
    plain = tmp_path / "weights.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, plain)
    with pytest.raises(ValueError, match="weights.pt.*not a Lightning checkpoint"):
        Ensemble(RESNET, num_classes=NUM_CLASSES, in_channels=1, checkpoints=[str(plain)])
    with pytest.raises(ValueError, match="does not fit"):  # 4-class checkpoint, 5-class ensemble
        Ensemble(RESNET, num_classes=5, in_channels=1, checkpoints=[str(single_checkpoint)])


def test_ensemble_checkpoint_reloads_without_its_member_files(single_checkpoint, tmp_path):
    member = tmp_path / "member.ckpt"
    member.write_bytes(single_checkpoint.read_bytes())
    net = {
        "_target_": ENSEMBLE,
        "member": RESNET,
        "combine": "head",
        "checkpoints": [str(member)] * 2,
    }
    module = make_module(
        net,
        objective={"_target_": "quickdraw.models.objectives.EnsembleMembers", "bootstrap": True},
    )
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.fit(module, loader(stroke_batches(2)))
    trainer.save_checkpoint(tmp_path / "ensemble.ckpt")
    member.unlink()  # a trained ensemble's checkpoint holds every member's weights
    restored = QuickDrawModule.load_from_checkpoint(tmp_path / "ensemble.ckpt", weights_only=True)
    assert restored.hparams.net["checkpoints"] is None and restored.hparams.net["num_members"] == 2
    images = stroke_batches(1, seed=3)[0]["image"]
    assert torch.equal(restored.predict_proba(images), module.predict_proba(images))


def test_mean_ensemble_trains_and_frozen_one_refuses_to(tmp_path):
    net = {"_target_": ENSEMBLE, "member": RESNET, "num_members": 2, "combine": "mean"}
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.fit(make_module(net), loader(stroke_batches(1)))
    assert trainer.callback_metrics["train/loss_members"] > 0
    with pytest.warns(UserWarning, match="no trainable parameters"):
        frozen = make_module({**net, "freeze_members": True})
    with pytest.raises(RuntimeError, match="no trainable parameters"):
        frozen.configure_optimizers()


class EvalRecorder(L.Callback):
    def __init__(self) -> None:
        self.outputs: list[dict] = []
        self.at_sanity_end: tuple | None = None

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        self.at_sanity_end = (pl_module.val_class_acc, pl_module.loss.weight.clone())

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.outputs.append(outputs)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        # What a callback such as the adaptive sampler reads: the epoch's per-class accuracy.
        self.class_acc_seen = pl_module.val_class_accuracy()


def test_validation_updates_class_weights_metrics_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    recorder = EvalRecorder()
    module = make_module(
        loss={"_target_": "quickdraw.models.losses.ClassWeightedCrossEntropy"}, l2=1e-5
    )
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = make_trainer(
        tmp_path, max_steps=2, num_sanity_val_steps=1, logger=logger, callbacks=[recorder]
    )
    val = stroke_batches(2, seed=1)
    trainer.fit(module, loader(stroke_batches(2)), loader(val))

    assert recorder.at_sanity_end[0] is None and torch.equal(
        recorder.at_sanity_end[1], torch.ones(NUM_CLASSES)
    )
    # The exposed per-class accuracy is the model's (what callbacks read is what the module
    # keeps), and the loss weights follow it.
    preds = torch.cat([module.predict_proba(b["image"]).argmax(1) for b in val])
    target = torch.cat([b["label"] for b in val])
    own = torch.stack([(preds[target == c] == c).float().mean() for c in range(NUM_CLASSES)])
    np.testing.assert_allclose(module.val_class_acc, own.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(recorder.class_acc_seen, module.val_class_acc)
    raw = 1 - own + 0.25
    assert torch.allclose(module.loss.weight, raw / raw.mean())
    metrics = trainer.callback_metrics
    for name in (
        "val/loss",
        "val/acc",
        "val/acc3",
        "val/map3",
        "val/map3_best",
        "val/acc_worst10",
        "train/loss_step",
    ):
        assert name in metrics, name
    assert metrics["val/acc_worst10"] == own.min() and metrics["train/l2_step"] > 0
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"val/confusion_most_confused", "val/predictions"} <= set(events.Tags()["images"])


def test_l2_penalty_is_added_to_the_training_loss():
    torch.manual_seed(0)
    penalised, plain = make_module(l2=1e-3), make_module()
    plain.load_state_dict(penalised.state_dict())
    batch = stroke_batches(1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer warns
        difference = penalised.training_step(batch, 0) - plain.training_step(batch, 0)
    weights = [p for p in penalised.net.parameters() if p.ndim > 1]  # conv and linear weights only
    expected = 1e-3 * sum(float(w.detach().pow(2).sum()) for w in weights)
    assert expected > 0 and float(difference.detach()) == pytest.approx(expected, rel=1e-4)


def test_module_input_handling_and_argument_checks():
    module = make_module().eval()
    images = stroke_batches(1)[0]["image"]
    assert torch.allclose(module(images), module(images.float() / 255))
    module.train()
    module.predict_proba(images)
    assert module.training  # predict_proba restores the mode it found
    with pytest.raises(ValueError, match="EnsembleMembers.*not an Ensemble"):
        make_module(
            objective={"_target_": "quickdraw.models.objectives.EnsembleMembers", "bootstrap": True}
        )
    with pytest.raises(ValueError, match="num_classes"):
        QuickDrawModule(net=RESNET, optimizer=ADAMW, num_classes=3, classes=CLASSES)
    weighted = make_module(loss={"_target_": "quickdraw.models.losses.ClassWeightedCrossEntropy"})
    assert isinstance(weighted.loss, ClassWeightedCrossEntropy)


@pytest.mark.parametrize("combine", [None, "mean"])
def test_checkpoints_of_quickdraw_0_1_still_load(tmp_path, combine):
    """0.1 checkpoints had `bootstrap: none|batch` where today's have `objective`."""
    from quickdraw.models.loading import load_model
    from quickdraw.models.objectives import EnsembleMembers, Plain

    net = RESNET if combine is None else {"_target_": ENSEMBLE, "member": RESNET, "num_members": 2}
    module = make_module(net, raster={"size": SIZE, "encoding": "gray"})
    hparams = {k: v for k, v in module.hparams.items() if k != "objective"}
    hparams["bootstrap"] = "none" if combine is None else "batch"
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, path)
    restored = load_model(path)
    if combine is None:
        assert isinstance(restored.objective, Plain)
    else:
        assert isinstance(restored.objective, EnsembleMembers) and restored.objective.bootstrap
    images = stroke_batches(1, seed=4)[0]["image"]
    torch.testing.assert_close(restored.predict_proba(images), module.eval().predict_proba(images))


# -- stroke-sequence networks and mixed ensembles -----------------------------------------------------
RNN = {
    "_target_": "quickdraw.models.components.lstm.StrokeRNN",
    "input": "sequence",
    "conv_channels": [8, 8],
    "kernel_sizes": [3, 3],
    "hidden": 16,
    "layers": 2,
    "dropout": 0.0,  # the overfit test measures capacity, not regularisation
}
SEQUENCE = {"kind": "sequence", "max_points": 32}
TEMPORAL = {"kind": "raster", "size": SIZE, "encoding": "temporal"}
GRAY = {"size": SIZE, "encoding": "gray"}
MIXED = {
    "_target_": ENSEMBLE,
    "member": None,
    "members": [RESNET, {**RESNET, "input": "temporal"}, RNN],
}


def line_drawings(n: int, seed: int = 0):
    """(StrokeBatch, labels): drawing i is three jittered strokes at angle (i % 4) * 45 degrees,
    each drawn from a random end, so only the lines' direction tells the classes apart."""
    from quickdraw.data.strokes import StrokeBatch

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    drawings = []
    for c in labels:
        strokes = []
        for _ in range(3):
            angle = c * math.pi / NUM_CLASSES + 0.15 * rng.standard_normal()
            centre, half = 60 + 130 * rng.random(2), 25 + 35 * rng.random()
            t = np.linspace(-1, 1, 8) * rng.choice([-1, 1])
            xy = np.clip(
                centre[:, None] + half * t * [[math.cos(angle)], [math.sin(angle)]], 0, 255
            )
            strokes.append(np.rint(xy).tolist())
        drawings.append(strokes)
    return StrokeBatch.from_drawings(drawings), torch.from_numpy(labels)


def input_batches(num_batches: int, batch_size: int = 16, seed: int = 0) -> list[dict]:
    """Loader batches holding the gray `image`, `temporal` and `sequence` inputs of the same drawings."""
    from quickdraw.data.inputs import build_inputs, spec_from_config, to_tensors
    from quickdraw.data.raster import RasterSpec

    strokes, labels = line_drawings(num_batches * batch_size, seed)
    specs = {"image": RasterSpec(**GRAY), "temporal": spec_from_config(TEMPORAL)}
    specs["sequence"] = spec_from_config(SEQUENCE)
    out = []
    for b in range(num_batches):
        index = np.arange(b * batch_size, (b + 1) * batch_size)
        batch = to_tensors(build_inputs(specs, strokes.select(index)))
        out.append({**batch, "label": labels[index], "key_id": torch.from_numpy(index)})
    return out


def make_input_module(net: dict, **kwargs) -> QuickDrawModule:
    inputs = {"temporal": TEMPORAL, "sequence": SEQUENCE}
    return make_module(net, raster=GRAY, inputs=inputs, log_images_every_n_epochs=0, **kwargs)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stroke_rnn_shapes_and_gradients(cell):
    from quickdraw.models.components.lstm import StrokeRNN

    model = StrokeRNN(
        5, **{k: v for k, v in RNN.items() if k not in ("_target_", "input")}, cell=cell
    )
    points, lengths = input_batches(1, batch_size=4)[0]["sequence"]
    lengths = lengths.clone()
    lengths[0] = 0  # an empty drawing (blank canvas) still gets logits
    out = model((points, lengths))
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    assert_every_trainable_param_has_grad(model, out)
    # Padding after a drawing's end does not change its output.
    model.eval()
    longer = torch.cat([points, torch.randn(4, 5, 3)], dim=1)  # junk beyond every length
    with torch.no_grad():
        # (to float rounding: the kernels may block a longer sequence differently; leaked junk
        # moves logits by ~1e-2)
        torch.testing.assert_close(
            model((longer, lengths)), model((points, lengths)), atol=1e-4, rtol=1e-3
        )


def test_sequence_model_overfits_a_few_batches(tmp_path):
    # (The mixed ensemble's members are this network and ResNet18s, which overfit above; it
    # trains end to end in test_train's experiment run and in the frozen-members test below.)
    torch.manual_seed(0)
    recorder = LossRecorder()
    trainer = make_trainer(tmp_path, max_steps=45, limit_val_batches=0, callbacks=[recorder])
    module = make_input_module(RNN)
    trainer.fit(module, loader(input_batches(3)))
    start, end = sum(recorder.losses[:3]) / 3, sum(recorder.losses[-3:]) / 3
    assert end < 0.6 * start, recorder.losses


def test_a_model_records_exactly_the_inputs_it_reads():
    from quickdraw.data.inputs import spec_config, spec_from_config

    assert make_input_module(RNN).input_names == ["sequence"]
    rnn = make_input_module(RNN).hparams
    assert rnn.raster is None and rnn.inputs == {"sequence": SEQUENCE}
    resnet = make_input_module(RESNET).hparams
    assert resnet.raster == GRAY and resnet.inputs is None  # as every checkpoint before inputs
    mixed = make_input_module(MIXED)
    assert mixed.input_names == ["image", "temporal", "sequence"]
    full = {
        n: spec_config(spec_from_config(c))
        for n, c in (("temporal", TEMPORAL), ("sequence", SEQUENCE))
    }
    assert mixed.hparams.inputs == full  # every field, defaults included
    assert [m.conv1.in_channels for m in mixed.net.members[:2]] == [1, 3]
    with pytest.raises(ValueError, match="reads input 'sequence'.*data.inputs.sequence"):
        make_module(RNN, raster=GRAY)


@pytest.fixture(scope="module")
def input_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Briefly trained single runs on each input (gray, temporal, sequence), saved as checkpoints."""
    root = tmp_path_factory.mktemp("inputs")
    paths = {}
    for name, net in {
        "gray": RESNET,
        "temporal": {**RESNET, "input": "temporal"},
        "rnn": RNN,
    }.items():
        torch.manual_seed(0)
        trainer = make_trainer(root, max_steps=2)
        trainer.fit(make_input_module(net), loader(input_batches(2)))
        paths[name] = root / f"{name}.ckpt"
        trainer.save_checkpoint(paths[name])
    return paths


def test_sequence_checkpoint_reloads_and_predicts_from_strokes(input_checkpoints):
    from quickdraw.inference.runner import blank_proba, model_inputs, predict_proba
    from quickdraw.models.loading import load_model

    path = input_checkpoints["rnn"]
    assert set(torch.load(path, weights_only=True)["hyper_parameters"]["inputs"]) == {"sequence"}
    model = load_model(path)
    assert list(model_inputs(model)) == ["sequence"]
    strokes, _ = line_drawings(6, seed=5)
    probs = predict_proba(model, strokes)
    assert probs.shape == (6, NUM_CLASSES) and np.allclose(probs.sum(1), 1, atol=1e-5)
    batch = input_batches(1, batch_size=6, seed=5)[0]
    np.testing.assert_allclose(
        probs, model.predict_proba(model.batch_inputs(batch)).numpy(), atol=1e-6
    )
    flipped = predict_proba(model, strokes, tta="flip")  # mirrored strokes make a mirrored sequence
    assert flipped.shape == probs.shape and not np.allclose(flipped, probs)
    assert blank_proba(model).shape == (NUM_CLASSES,)


@pytest.mark.parametrize("combine", ["mean", "head"])
def test_mixed_ensemble_of_frozen_runs_reloads_and_predicts(input_checkpoints, tmp_path, combine):
    from quickdraw.inference.runner import predict_proba
    from quickdraw.models.loading import load_model

    ckpts = [str(input_checkpoints[k]) for k in ("gray", "temporal", "rnn")]
    net = {**MIXED, "checkpoints": ckpts, "freeze_members": True, "combine": combine}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a frozen averaging ensemble warns it cannot train
        module = make_input_module(net)
    strokes, _ = line_drawings(5, seed=7)
    singles = [predict_proba(load_model(c), strokes) for c in ckpts]
    path = tmp_path / "mixed.ckpt"
    trainer = make_trainer(tmp_path, max_steps=0)
    trainer.fit(module, loader(input_batches(1))) if combine == "head" else None
    trainer.strategy.connect(module) if combine == "mean" else None
    trainer.save_checkpoint(path)
    model = load_model(path)
    probs = predict_proba(model, strokes)
    if combine == "mean":  # the members' probabilities, averaged: each fed its own input
        np.testing.assert_allclose(probs, np.mean(singles, axis=0), atol=1e-5)
    assert predict_proba(model, strokes, tta="flip").shape == (5, NUM_CLASSES)


def test_mixed_ensemble_refuses_a_member_trained_on_another_input(input_checkpoints):
    bad = {**MIXED, "checkpoints": [str(input_checkpoints[k]) for k in ("gray", "rnn", "temporal")]}
    with pytest.raises(Exception, match="rnn.ckpt does not fit"):  # Hydra wraps the CheckpointError
        make_input_module(bad)
    resized = {
        **MIXED,
        "checkpoints": [str(input_checkpoints[k]) for k in ("gray", "temporal", "rnn")],
    }
    with pytest.raises(ValueError, match="trained on .*would read"):
        make_module(
            resized,
            raster={**GRAY, "size": 2 * SIZE},
            inputs={"temporal": TEMPORAL, "sequence": SEQUENCE},
        )
