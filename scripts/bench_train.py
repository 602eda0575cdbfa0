"""Training throughput per model (images/s) and whether the loader keeps up, at 64 px.

    python scripts/bench_train.py [--steps 20] [--batch-size 128] [--models resnet18,ensemble_mean] [--threads N]

On a GPU it also times bf16 autocast + channels_last (and torch.compile with --compile).
The loader figure is the DataModule's train loader on the synthetic store (generated on first use).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

import quickdraw  # noqa: F401
from quickdraw.data.augment import StrokeAugment
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.models.module import QuickDrawModule

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["resnet18", "resnet18_penalized", "ensemble_head", "ensemble_mean"]


def model_config(name: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}"], return_hydra_config=False)
    from omegaconf import OmegaConf

    model = OmegaConf.to_container(cfg.model, resolve=False)
    model.pop("_target_")
    model["scheduler"] = None  # needs a trainer; irrelevant to throughput
    return model


def loader_rate(batch_size: int, seconds: float = 10.0) -> float:
    dm = QuickDrawDataModule(
        cache_dir=str(ROOT / "data"), per_class=2000, batch_size=batch_size, augment=StrokeAugment()
    )
    dm.prepare_data()
    dm.setup()
    n, t0 = 0, time.perf_counter()
    for batch in dm.train_dataloader(epoch=0):
        n += len(batch["label"])
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0)


def model_rate(
    name: str, batch_size: int, steps: int, device: str, fast: bool, compile_: bool
) -> float:
    cfg = model_config(name)
    model = QuickDrawModule(
        **cfg,
        num_classes=340,
        in_channels=1,
        classes=[str(i) for i in range(340)],
        raster={"size": 64},
    )
    model.to(device).train()
    if fast:
        model.net.to(memory_format=torch.channels_last)
    if compile_:
        model.net.compile()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.randint(0, 256, (batch_size, 1, 64, 64), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 340, (batch_size,), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if fast else nullcontext()
    model.log = model.log_dict = lambda *a, **k: None  # no trainer attached

    def step() -> None:
        with autocast:
            loss = model.training_step({"image": images, "label": labels}, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--compile", action="store_true", help="also time torch.compile (GPU)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; batch {args.batch_size} at 64 px, 340 classes")
    loader = loader_rate(args.batch_size)
    print(f"loader (1 process, augmentation on): {loader:,.0f} images/s")
    variants = [("fp32", False, False)]
    if device == "cuda":
        variants += [("bf16+channels_last", True, False)] + (
            [("bf16+channels_last+compile", True, True)] if args.compile else []
        )
    print(f"{'model':<22}{'variant':<30}{'images/s':>10}  loader keeps up")
    for m in args.models.split(","):
        for label, fast, comp in variants:
            rate = model_rate(m, args.batch_size, args.steps, device, fast, comp)
            workers = max(1, int(-(-rate // loader)))
            verdict = "yes" if loader >= rate else f"needs {workers} loader workers"
            print(f"{m:<22}{label:<30}{rate:>10,.0f}  {verdict}")


if __name__ == "__main__":
    main()
