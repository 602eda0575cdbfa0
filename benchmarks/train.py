"""Training throughput per model (images/s) with each GPU setting, and whether the loader keeps up, at 64 px.

Models reading other inputs than gray images (`strokes_lstm`: pen-move sequences; `ensemble_mixed`:
gray + temporal images + sequences) get batches of every input they read, sequences padded to 128
points with real drawings' lengths (~45 points on average), and the loader is timed serving those inputs.

    python -m benchmarks.train [--steps 20] [--warmup 5] [--batch-size 512] [--models resnet18,ensemble_mean]
                               [--workers 8] [--compile] [--threads N]

Models are timed through QuickDrawModule itself (its training_step, configure_model), one
setting at a time: fp32, channels_last, bf16 autocast (fp16 where the GPU lacks bf16), both,
and with --compile torch.compile on top; hardware=gpu uses bf16 + channels_last. On a CPU only
fp32 is timed. The loader figures are the DataModule's train loader on the synthetic store
(generated on first use), copied to the GPU from pageable and from pinned memory.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from benchmarks import common
from quickdraw.data.augment import StrokeAugment
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.data.inputs import spec_from_config
from quickdraw.models.module import QuickDrawModule

MODELS = [
    "resnet18", "resnet18_penalized", "ensemble_head", "ensemble_mean", "strokes_lstm",
    "ensemble_mixed",
]  # fmt: skip
NUM_CLASSES, SIZE, STEPS = 340, 64, 128
INPUTS = {  # what quickdraw/conf/data/quickdraw.yaml offers, at SIZE
    "temporal": {"kind": "raster", "size": SIZE, "encoding": "temporal"},
    "sequence": {"kind": "sequence", "max_points": STEPS},
}


def model_config(name: str) -> dict:
    """The model's config as training composes it, unresolved, without the scheduler (it needs a
    trainer; irrelevant to throughput)."""
    return {**common.model_config(name, resolve=False), "scheduler": None}


def loader_rate(
    batch_size: int, workers: int, device: str, pin: bool, seconds: float, inputs=("image",)
) -> float:
    """Drawings/s out of the train loader serving `inputs` (and onto the GPU, when there is one)."""
    dm = QuickDrawDataModule(
        cache_dir=str(common.ROOT / "data"),
        per_class=2000,
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=pin,
        augment=StrokeAugment(),
        inputs={n: spec_from_config(c) for n, c in INPUTS.items()},
    )
    dm.prepare_data()
    dm.setup()
    dm.serve(list(inputs))
    n, t0 = 0, None
    for batch in dm.train_dataloader(epoch=0):
        if t0 is None:  # worker start-up is not throughput
            t0 = time.perf_counter()
            continue
        move_data_to_device({k: batch[k] for k in inputs}, device)
        n += len(batch["label"])
        if time.perf_counter() - t0 > seconds:
            break
    if device == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def model_rate(
    name: str,
    batch_size: int,
    steps: int,
    device: str,
    half: torch.dtype | None,
    nhwc: bool,
    compile_: bool,
    warmup: int,
) -> float:
    config = {**model_config(name), "channels_last": nhwc, "compile": compile_}
    model = QuickDrawModule(
        **config,
        num_classes=NUM_CLASSES,
        in_channels=1,
        classes=[str(i) for i in range(NUM_CLASSES)],
        raster={"size": SIZE},
        inputs=INPUTS,
    )
    model.configure_model()  # what the Trainer calls: channels_last weights, compilation
    model.to(device).train()
    model.log = model.log_dict = lambda *a, **k: None  # no trainer attached
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = move_data_to_device(random_inputs(batch_size), device)
    batch = {name: batch[name] for name in model.input_names}
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)
    autocast = torch.autocast(device, dtype=half) if half else nullcontext()

    def step() -> None:
        with autocast:
            loss = model.training_step({**batch, "label": labels}, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):  # cuDNN autotuning, compilation, the allocator's first growth
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t0)


def random_inputs(batch_size: int) -> dict:
    """A batch of every input INPUTS offers (and gray images), shaped as the loader serves them."""
    gen = torch.Generator().manual_seed(0)
    lengths = (torch.distributions.Exponential(1 / 40).sample((batch_size,)) + 5).long()
    lengths = lengths.clamp(max=STEPS)
    lengths[0] = STEPS  # a batch of 128 real drawings almost always holds one of >= 128 points
    points = torch.randn(batch_size, STEPS, 3, generator=gen) * 0.05
    points *= (torch.arange(STEPS)[None, :] < lengths[:, None])[..., None]
    return {
        "image": torch.randint(
            0, 256, (batch_size, 1, SIZE, SIZE), dtype=torch.uint8, generator=gen
        ),
        "temporal": torch.randint(
            0, 256, (batch_size, 3, SIZE, SIZE), dtype=torch.uint8, generator=gen
        ),
        "sequence": (points, lengths),
    }


def variants(device: str, compile_: bool) -> list[tuple[str, torch.dtype | None, bool, bool]]:
    """(label, autocast dtype, channels_last, compile) for each setting worth timing here."""
    if device != "cuda":
        return [("fp32", None, False, False)]
    half, tag = (
        (torch.bfloat16, "bf16") if torch.cuda.is_bf16_supported() else (torch.float16, "fp16")
    )
    out = [
        ("fp32", None, False, False),
        ("fp32+channels_last", None, True, False),
        (tag, half, False, False),
        (f"{tag}+channels_last", half, True, False),
    ]
    return out + ([(f"{tag}+channels_last+compile", half, True, True)] if compile_ else [])


def model_inputs(name: str) -> tuple[str, ...]:
    """The inputs model config `name` reads (no weights built beyond a tiny class count)."""
    config = {**model_config(name), "log_images_every_n_epochs": 0}
    module = QuickDrawModule(**config, num_classes=2, raster={"size": SIZE}, inputs=INPUTS)
    return tuple(module.input_names)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 512 on GPU, 128 on CPU")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--workers", type=int, default=None, help="loader workers (default: 8 on GPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (GPU)")
    p.add_argument("--loader-seconds", type=float, default=10.0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = args.batch_size or (512 if device == "cuda" else 128)
    workers = args.workers if args.workers is not None else (8 if device == "cuda" else 0)
    torch.backends.cudnn.benchmark = True  # fixed batch shapes, as hardware=gpu sets
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}, {torch.get_num_threads()} threads; batch {batch} at {SIZE} px")
    pins = [False, True] if device == "cuda" else [False]
    loaders: dict[tuple[str, ...], float] = {}
    models = args.models.split(",")
    for inputs in dict.fromkeys(model_inputs(m) for m in models):
        for pin in pins:
            rate = loader_rate(batch, workers, device, pin, args.loader_seconds, inputs)
            loaders[inputs] = rate
            where = (
                f" -> GPU from {'pinned' if pin else 'pageable'} memory" if device == "cuda" else ""
            )
            what = " + ".join(inputs)
            print(
                f"loader of {what} ({workers} workers, augmentation on){where}: {rate:,.0f} drawings/s"
            )
    print(f"{'model':<22}{'setting':<30}{'images/s':>10}  loader keeps up")
    for m in models:
        loader = loaders[model_inputs(m)]
        for label, half, nhwc, comp in variants(device, args.compile):
            rate = model_rate(m, batch, args.steps, device, half, nhwc, comp, args.warmup)
            verdict = "yes" if loader >= rate else f"no: {loader / rate:.0%} of the model's rate"
            print(f"{m:<22}{label:<30}{rate:>10,.0f}  {verdict}")


if __name__ == "__main__":
    main()
