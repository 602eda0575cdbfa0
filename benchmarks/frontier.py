"""The accuracy / speed / size frontier: each model trained at one budget, scored, exported and timed.

    python -m benchmarks.frontier                                   # every model, seed 42, the real sample
    python -m benchmarks.frontier --models resnet18,mobilenetv3_small_100,distilled --seeds 42,1,2
    python -m benchmarks.frontier --browser resnet18,mobilenetv3_small_100 --browser-runs 5

Per model: parameters; ONNX size fp32 / int8 (image models: static int8 calibrated on the run's
validation drawings; stroke-sequence models: dynamic int8, weights only, as static int8 calibrates
on images) and their top-1 agreement with PyTorch on the sample's raw test drawings; native CPU
time per guess (strokes -> probabilities through the demo's Guesser, one pinned core, one
thread, p50/p95, onnxruntime int8; PyTorch for a model without an ONNX form: an ensemble of
several inputs); in-browser guesses per second and move -> updated guess p50/p95 while drawing
one 60 Hz stroke (headless Chromium, onnxruntime-web WASM, the int8 page or `--page fp32`;
`--browser-runs` page loads each); top-1, MAP@3 and early AUC (`quickdraw.evaluate prefix=strokes`) on `test_simplified.csv`, each seed
trained at the same budget (`--budget` epochs of `--per-class` drawings a class, `--size` px).
`distilled` is `mobilenetv3_small_100` trained against the same seed's ResNet18 (experiment=distill),
paired with `mobilenetv3_small_100` trained alone; `ensemble` averages the ResNet18s of all `--seeds`
(experiment=ensemble_mean from their checkpoints, frozen: one model, scored once), and
`distilled_ensemble` is `mobilevit_xxs` (the page's network) distilled from it, paired by seed
with `mobilevit_xxs` trained alone. Every run is an ordinary run folder under
`--out`; finished runs are reused. Writes `frontier.md` and `frontier.json` there; the figure is
`python -m benchmarks.figures.frontier`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import (
    CLASSES,
    ROOT,
    SAMPLE_DIR,
    cpu_model,
    model_config,
    percentiles,
    pinned,
    run,
    timed_ms,
    usable_cpus,
    warn_if_busy,
)
from quickdraw.core.files import markdown_table
from quickdraw.core.runs import RunDir
from quickdraw.data.sources import StoreSource

# name: (experiment, training overrides, teacher: None or the model whose same-seed run teaches)
MODELS: dict[str, tuple[str, list[str], str | None]] = {
    "resnet18": ("resnet18", [], None),
    "mobilenetv3_small_100": ("timm_mobilenetv3", [], None),
    "mobilenetv3_small_050": ("timm_mobilenetv3", ["model.net.name=mobilenetv3_small_050"], None),
    "efficientnet_b0": ("timm_efficientnet", [], None),
    "mobilevit_xxs": ("timm_mobilevit", [], None),
    "convnext_atto": ("timm_convnext", [], None),
    "vit_tiny": ("timm_vit", [], None),
    "strokes_lstm": ("strokes_lstm", [], None),
    "strokes_transformer": ("strokes_transformer", [], None),
    "distilled": ("distill", ["model.net.name=mobilenetv3_small_100"], "resnet18"),
    "ensemble": ("ensemble_mean", ["model.net.freeze_members=true"], None),
    "distilled_ensemble": ("distill", ["model.net.name=mobilevit_xxs"], "ensemble"),
}
# A distilled student's architecture: its sizes and times are that model's.
ARCHITECTURE = {"distilled": "mobilenetv3_small_100", "distilled_ensemble": "mobilevit_xxs"}
ENSEMBLE_OF = "resnet18"  # `ensemble`: the mean of this model's runs at every --seeds
ORT_DIST = ROOT / "build" / "web-deps" / "node_modules" / "onnxruntime-web" / "dist"


def trained(args, name: str, seed: int) -> RunDir:
    """The run folder of `name` at `seed`, trained once at the budget (its teacher first)."""
    experiment, extra, teacher = MODELS[name]
    if name == "ensemble":  # one model whatever the seed: the seeds' runs are its members
        members = [str(trained(args, ENSEMBLE_OF, s).best_link) for s in args.seeds]
        extra = [*extra, f"model.net.checkpoints=[{','.join(members)}]"]
        seed = args.seeds[0]
    folder = RunDir(Path(args.out).resolve() / name / ensemble_tag(args, name, seed))
    if folder.metrics_file.exists():
        return folder
    if teacher:
        extra = [*extra, f"model.objective.teacher={trained(args, teacher, seed).best_link}"]
    folder.path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run([sys.executable, "-m", "quickdraw.train", f"experiment={experiment}", *args.common, *extra,
         f"seed={seed}", f"hydra.run.dir={folder.path}"], folder.path.parent / f"seed{seed}.log")  # fmt: skip
    print(f"  trained {name} seed {seed} in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return folder


def ensemble_tag(args, name: str, seed: int) -> str:
    """The run folder's name: `seed<N>`, or `seeds<A>-<B>-...` for the ensemble of those seeds."""
    return f"seeds{'-'.join(map(str, args.seeds))}" if name == "ensemble" else f"seed{seed}"


def untrained(args, name: str) -> RunDir:
    """`--untrained`: the model for the 340 Kaggle classes at `--size` px, saved without training
    (sizes and times do not depend on the weights), as `best.ckpt` of a run-like folder."""
    from quickdraw.data.inputs import spec_config
    from quickdraw.data.sequence import SequenceSpec
    from quickdraw.models import QuickDrawModule
    from quickdraw.testing.checkpoints import save_module

    experiment, extra, _ = MODELS[name]
    folder = RunDir(Path(args.out).resolve() / "untrained" / name)
    if not folder.best_link.exists():
        sizes = (f"data.raster.size={args.size}",)
        config = model_config(None, overrides=(f"experiment={experiment}", *extra, *sizes))
        sequence = {"sequence": spec_config(SequenceSpec())}  # the stroke models' input
        model = QuickDrawModule(
            **config, classes=CLASSES, raster={"size": args.size}, inputs=sequence
        )
        folder.best_link.parent.mkdir(parents=True, exist_ok=True)
        save_module(model, folder.best_link)
    return folder


def scored(args, folder: RunDir) -> dict:
    """Top-1, MAP@3 and early AUC of the run's best checkpoint on the test file (scored once)."""
    evaluation = RunDir(folder.path / "eval-prefix")
    if not evaluation.metrics_file.exists():
        test = ([f"store={args.store}", "split=test"] if args.store
                else [f"input={args.test_input}", f"labels={args.test_labels}"])  # fmt: skip
        run([sys.executable, "-m", "quickdraw.evaluate", f"ckpt_path={folder.best_link}",
             *test, "prefix=strokes",
             f"hydra.run.dir={evaluation.path}"], folder.path / "eval-prefix.log")  # fmt: skip
    m = evaluation.metrics()
    return {k: m[k] for k in ("test/acc", "test/map3", "early/auc_top1") if k in m}


def exported(args, folder: RunDir, model) -> dict:
    """fp32 and int8 ONNX of the run (written once): sizes in MB and top-1 agreement with PyTorch
    on the parity drawings, strokes -> probabilities through the demo's path for both."""
    from quickdraw.data.sequence import SequenceSpec
    from quickdraw.deploy.onnx import (
        FP32,
        INT8,
        ExportError,
        Quantization,
        export_checkpoint,
        export_onnx,
        graph_input,
        quantize_int8,
    )
    from quickdraw.deploy.runtime import load_backend
    from quickdraw.serving.guesser import Guesser

    out = folder.path / "onnx"
    torch_guesser = Guesser(model)
    batches = [torch_guesser.parse_strokes(d) for d in args.raw_drawings]
    try:
        sequence = isinstance(graph_input(model)[1], SequenceSpec)
        if not (out / INT8).exists() and (args.untrained or sequence):
            # No store of its classes (untrained: the agreement then flatters int8), or no images
            # to calibrate on (pen moves): static int8 on the parity drawings, or dynamic int8.
            export_onnx(model, out)
            images = None if sequence else np.concatenate([torch_guesser.spec(b) for b in batches])
            quantize_int8(model, out, "dynamic" if sequence else "static", images)
        elif not (out / INT8).exists():
            store = args.store or next(Path(args.data_dir).glob("stores/*/manifest.json")).parent
            export_checkpoint(folder.best_link, out, quantize="int8",
                              quantization=Quantization(store=str(store), per_class=8))  # fmt: skip
    except ExportError as e:
        print(f"  no ONNX export: {str(e)[:100]}")
        return {}
    result: dict = {"int8_mode": "dynamic" if sequence else "static"}
    ref = top1(model, batches)
    for key, name in (("fp32", FP32), ("int8", INT8)):
        result[f"{key}_mb"] = (out / name).stat().st_size / 1e6
        if not args.untrained:  # an untrained model's near-uniform guesses agree by chance
            got = top1(load_backend(out / name, "onnx", threads=1), batches)
            result[f"{key}_agree"] = float((got == ref).mean())
    return result


def onnx_scored(args, folder: RunDir) -> dict:
    """Top-1 and MAP@3 of the run's fp32 and int8 ONNX files on the test file (what the page's
    model scores, next to PyTorch's in `scored`), through evaluate's own scoring; written once."""
    from quickdraw.deploy.onnx import FP32, INT8
    from quickdraw.deploy.runtime import load_backend
    from quickdraw.evaluation.score import evaluate

    result = {}
    for key, name in (("fp32", FP32), ("int8", INT8)):
        if not (folder.path / "onnx" / name).exists():
            continue
        out = RunDir(folder.path / f"eval-onnx-{key}")
        if not out.metrics_file.exists():
            test = ({"store": args.store, "split": "test"} if args.store
                    else {"input": args.test_input, "labels": args.test_labels})  # fmt: skip
            evaluate(load_backend(folder.path / "onnx" / name, "onnx"), out.path, **test)
        m = out.metrics()
        result.update({f"{key}_acc": m["test/acc"], f"{key}_map3": m["test/map3"]})
    return result


def top1(backend, batches: list) -> np.ndarray:
    """The top class of each one-drawing batch, in one call of the inference path evaluate and the
    demo share."""
    from quickdraw.data.strokes import StrokeBatch
    from quickdraw.inference.runner import predict_proba

    return predict_proba(backend, StrokeBatch.concat(batches)).argmax(1)


def native_ms(args, folder: RunDir, model, onnx: bool) -> dict:
    """Strokes -> probabilities, one drawing at a time, one pinned core and one thread."""
    from quickdraw.deploy.runtime import load_backend
    from quickdraw.serving.guesser import Guesser

    backend = (
        load_backend(folder.path / "onnx" / "model.int8.onnx", "onnx", threads=1) if onnx else model
    )
    guesser = Guesser(backend)
    drawings = args.raw_drawings[: args.native_runs]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pinned(max(usable_cpus(), default=None)):
            ms = timed_ms(lambda i: guesser.guess_strokes(drawings[i % len(drawings)]),
                          args.native_runs, warmup=10)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    p50, p95 = percentiles(ms)
    return {
        "native_backend": "onnxruntime int8" if onnx else "PyTorch",
        "native_p50": p50,
        "native_p95": p95,
    }


def in_browser(args, folder: RunDir) -> dict:
    """`--browser-runs` loads of the page running the `--page` model (int8 or fp32), one 60 Hz
    stroke of `--moves` moves each: guesses a second over the stroke, move -> updated guess
    p50/p95 over every run's events."""
    from quickdraw.deploy.web import build_page
    from quickdraw.testing.browser import IDLE, draw, draw_synthetic, open_page

    out = folder.path / "onnx"
    build_page(out, ORT_DIST, "model.onnx" if args.page == "fp32" else "model.int8.onnx")
    moves = args.moves
    spiral = [(0.5 + 0.4 * (i / moves) * math.cos(i / 8), 0.5 + 0.4 * (i / moves) * math.sin(i / 8))
              for i in range(moves + 1)]  # fmt: skip
    rates, latencies, p95s = [], [], []
    for _ in range(args.browser_runs):
        with open_page(out) as s:
            draw(s.page, spiral[:20], steps=1)  # warm-up stroke
            s.page.wait_for_function(IDLE)
            s.page.evaluate("Object.assign(window.quickdraw.state, {latencies: [], stages: [], guesses: 0})")  # fmt: skip
            ms = draw_synthetic(s.page, spiral)
            s.page.wait_for_function(IDLE)
            lat = s.page.evaluate("window.quickdraw.state.latencies")
            rates.append(s.page.evaluate("window.quickdraw.state.guesses") / (ms / 1000))
            latencies += lat
            p95s.append(percentiles(lat)[1])
    p50, p95 = percentiles(latencies)
    return {"browser_model": args.page, "browser_rate": float(np.median(rates)), "browser_rate_min": float(min(rates)),
            "browser_p50": p50, "browser_p95": p95, "browser_p95_runs": p95s}  # fmt: skip


def measure(args, name: str) -> dict:
    from quickdraw.models.loading import load_model

    seeds, pooled = {}, {}
    if name == "ensemble" and not args.untrained:  # one model: scored once, no seed spread
        pooled = {"of": f"{ENSEMBLE_OF} seeds {','.join(map(str, args.seeds))}",
                  **scored(args, trained(args, name, args.seeds[0]))}  # fmt: skip
        print(f"  {name}: {pooled}", flush=True)
    for seed in [] if args.untrained or pooled else args.seeds:
        folder = trained(args, name, seed)
        seeds[seed] = scored(args, folder)
        print(f"  {name} seed {seed}: {seeds[seed]}", flush=True)
    first = untrained(args, name) if args.untrained else trained(args, name, args.seeds[0])
    model = load_model(first.best_link)
    row: dict = {"params_m": sum(p.numel() for p in model.parameters()) / 1e6, "seeds": seeds}
    if pooled:
        row["ensemble"] = pooled
    row.update(exported(args, first, model))
    if not args.untrained:
        row.update(onnx_scored(args, first))
    if "native" not in args.skip:
        row.update(native_ms(args, first, model, onnx="int8_mb" in row))
    if name in args.browser and "int8_mb" in row:
        row.update(in_browser(args, first))
    print(f"  {name}: {json.dumps({k: v for k, v in row.items() if k != 'seeds'}, default=str)}", flush=True)  # fmt: skip
    return row


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd}"


def table(results: dict, seeds: list[int]) -> str:
    """One row a model; a column no row has a figure for (times of accuracy runs, accuracy of
    --untrained ones) is left out."""

    def ranged(r: dict) -> str:
        runs = r["browser_p95_runs"]
        return (f"{r['browser_p50']:.1f} / {r['browser_p95']:.1f} (p95 per load "
                f"{min(runs):.1f}-{max(runs):.1f})")  # fmt: skip

    def onnx_map3(r: dict) -> str:
        return f"{r['fp32_map3']:.3f} / {r['int8_map3']:.3f}" if "int8_map3" in r else "-"

    def per_seed(r: dict) -> list[dict]:
        return [r["seeds"][s] for s in seeds if s in r["seeds"]] or (
            [r["ensemble"]] if "ensemble" in r else []
        )

    def stat(key: str):
        return lambda r: mean_sd([m[key] for m in per_seed(r) if key in m])

    columns = {
        "params (M)": lambda r: f"{r['params_m']:.2f}",
        "ONNX fp32 / int8 (MB)": lambda r: (
            f"{r['fp32_mb']:.1f} / {r['int8_mb']:.1f}" if "int8_mb" in r else "- (no ONNX)"
        ),
        "native ms/guess p50 / p95": lambda r: (
            f"{r['native_p50']:.1f} / {r['native_p95']:.1f} ({r['native_backend']})"
            if "native_p50" in r else "-"
        ),
        "browser guesses/s (min)": lambda r: (
            f"{r['browser_rate']:.0f} ({r['browser_rate_min']:.0f})" if "browser_rate" in r else "-"
        ),
        "browser move -> guess p50 / p95 (ms)": lambda r: ranged(r) if "browser_p50" in r else "-",
        "top-1": stat("test/acc"),
        "MAP@3": stat("test/map3"),
        "early AUC top-1": stat("early/auc_top1"),
        "MAP@3 per seed": lambda r: (
            f"{r['ensemble']['test/map3']:.3f} (one ensemble of {r['ensemble']['of']})"
            if "ensemble" in r
            else ", ".join(f"{m['test/map3']:.3f}" for m in per_seed(r) if "test/map3" in m) or "-"
        ),
        "int8 top-1 agreement": lambda r: f"{r['int8_agree']:.3f}" if "int8_agree" in r else "-",
        "first seed's ONNX MAP@3 fp32 / int8": onnx_map3,
    }  # fmt: skip
    cells = {h: [f(r) for r in results.values()] for h, f in columns.items()}
    kept = [h for h, v in cells.items() if any(c not in ("-", "") for c in v)]
    rows = [[name, *(cells[h][i] for h in kept)] for i, name in enumerate(results)]
    return markdown_table(["model", *kept], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")  # fmt: skip
    p.add_argument("--seeds", default="42", help="comma-separated seeds, paired across models")
    p.add_argument("--budget", type=int, default=8, help="epochs per run")
    p.add_argument("--per-class", type=int, default=12, help="drawings per class per epoch")
    p.add_argument("--size", type=int, default=32, help="raster side, px")
    p.add_argument("--browser", default="", help="comma-separated models timed in Chromium")
    p.add_argument("--browser-runs", type=int, default=5, help="page loads per browser model")
    p.add_argument("--page", choices=("int8", "fp32"), default="int8",
                   help="the model the timed page runs")  # fmt: skip
    p.add_argument("--moves", type=int, default=300, help="moves of the browser's stroke (60 Hz)")
    p.add_argument("--native-runs", type=int, default=200)
    p.add_argument("--skip", default="", help="comma-separated: native")
    p.add_argument(
        "--untrained",
        action="store_true",
        help="sizes and times only, of untrained models for 340 classes (no training)",
    )
    p.add_argument("--synthetic-per-class", type=int, default=600,
                   help="--source generated: drawings a class of the generated set")  # fmt: skip
    p.add_argument("--source", default=str(SAMPLE_DIR / "train_simplified.zip"),
                   help="a source the converter reads, or 'generated' (15 classes, scored on "
                        "its store's test split)")  # fmt: skip
    p.add_argument("--test-input", default=str(SAMPLE_DIR / "test_simplified.csv"))
    p.add_argument("--test-labels", default=str(SAMPLE_DIR / "test_labels.csv"))
    p.add_argument("--test-raw", default=str(SAMPLE_DIR / "test_raw.csv"), help="parity drawings")
    p.add_argument("--out", default=str(ROOT / "outputs" / "frontier"))
    p.add_argument("overrides", nargs="*", help="Hydra overrides added to every training run")
    args = p.parse_args()
    names = [n for n in args.models.split(",") if n]
    if (
        args.untrained
    ):  # a distilled student is its architecture, an ensemble its members: nothing to time
        names = [n for n in names if not MODELS.get(n, ("", [], None))[2] and n != "ensemble"]
    unknown = [n for n in names if n not in MODELS]
    generated = args.source == "generated"
    if unknown or not (generated or Path(args.source).exists()):
        sys.exit(f"unknown models {unknown} (known: {', '.join(MODELS)})" if unknown
                 else f"{args.source} not found: pass --source, --test-input, --test-labels, --test-raw")  # fmt: skip
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.browser = [n for n in args.browser.split(",") if n]
    args.skip = [n for n in args.skip.split(",") if n]
    args.data_dir = str(
        Path(args.out).resolve() / "data"
    )  # the frontier's own store: int8 calibrates on it
    # The real sample is small: its store gets a bigger validation split, as in compare_models.
    where = [f"data.synthetic_per_class={args.synthetic_per_class}"] if generated else [
        f"data.source={args.source}", "data.val_per_class=null", "data.test_per_class=null",
        "+data.convert_settings.val_fraction=0.15", "+data.convert_settings.test_fraction=0.05",
    ]  # fmt: skip
    args.store = (
        str(StoreSource(cache_dir=args.data_dir, synthetic_per_class=args.synthetic_per_class).path)
        if generated
        else None
    )
    args.common = [
        *where, f"paths.data_dir={args.data_dir}", f"data.per_class={args.per_class}",
        f"data.raster.size={args.size}", f"trainer.max_epochs={args.budget}",
        "callbacks.progress_bar.refresh_rate=0", *args.overrides,
    ]  # fmt: skip
    with open(args.test_raw, newline="") as f:
        args.raw_drawings = [json.loads(r["drawing"]) for r in islice(csv.DictReader(f), 500)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = warn_if_busy("the frontier")
    results_file = out / "frontier.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in names:
        print(f"{name}:", flush=True)
        results[name] = measure(args, name)
        results[name]["seeds"] = {int(k): v for k, v in results[name]["seeds"].items()}
        # Read again before writing: two invocations on one --out (other models) keep each other's rows.
        done = json.loads(results_file.read_text()) if results_file.exists() else {}
        earlier = {int(k): v for k, v in done.get(name, {}).get("seeds", {}).items()}
        results[name]["seeds"] = {**earlier, **results[name]["seeds"]}  # other --seeds runs too
        results = {**done, **{n: results[n] for n in names if n in results}}
        results_file.write_text(json.dumps(results, indent=1, default=str))
    for r in results.values():
        r["seeds"] = {int(k): v for k, v in r["seeds"].items()}
    what = ("untrained models for 340 classes (sizes and times only)" if args.untrained else
            f"budget {args.budget} epochs x {args.per_class} drawings a class, seeds {args.seeds}")  # fmt: skip
    text = (f"{what}, {args.size} px, {cpu_model()}, load average at start "
            f"{load if load is None else round(load, 1)}\n\n{table(results, args.seeds)}\n")  # fmt: skip
    (out / "frontier.md").write_text(text)
    print(text)
    print(f"written: {out / 'frontier.md'}, {results_file}")


if __name__ == "__main__":
    main()
