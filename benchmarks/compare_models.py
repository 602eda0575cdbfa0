"""Train the four models (and ResNet18 with fixed sampling) on one data set at an equal compute budget,
score each on a held-out labelled file, and write a Markdown results table.

    python -m benchmarks.compare_models                        # the real sample in ../shared, if present
    python -m benchmarks.compare_models --source DATA --test-input TEST.csv --test-labels LABELS.csv
    python -m benchmarks.compare_models --budget 30 data.raster.size=32    # extra Hydra overrides for every run

Variants (`--variants`): the Kaggle toolbox's options, each scored against the plain ResNet18 of
the same seed (paired), over `--seeds`; evaluation-time options (flip TTA, balancing) reuse the
seed's plain run, so they cost seconds:

    python -m benchmarks.compare_models --variants base,tta,balance,tta+balance --seeds 42,1,2 --budget 4 data.raster.size=32

Every variant is also scored on growing prefixes of the test drawings (`quickdraw.evaluate
prefix=strokes`, with the variant's evaluation options but balancing, which has no meaning for
prefixes): `early/auc_top1`, `early/median_fraction_first_stable` and final top-1 per seed,
paired against base, in `early.md`. The prefix-training variants (`prefix25`, ...) are the
comparison of issue 13:

    python -m benchmarks.compare_models --variants base,prefix25,prefix50,prefix75 --seeds 42,1,2

`--source generated` trains on the project's generated doodle set instead (15 classes, no download;
its own store split, `data.per_class` from `--per-class`) and scores the store's test split:

    python -m benchmarks.compare_models --source generated --variants base,prefix25,prefix50 --seeds 42,1,2 \
        --budget 6 --per-class 100 data.raster.size=32

Mixed ensembles (`--mixed`), per seed: ResNet18 on gray images, ResNet18 on temporal images and the
stroke-sequence LSTM, each trained `budget` epochs; then, with no further training, the averaging
ensemble of those three (frozen members), the homogeneous averaging ensemble of three gray ResNet18
runs (this seed's and two more trained with seeds `1000 + seed` and `2000 + seed`, so each seed
compares three members against three members, paired), and a learned head over the frozen mixed
members (`--head-epochs`). Reports top-1/MAP@3 per seed, mean ± std, paired gains over the best
single member and over the homogeneous ensemble, and where the members disagree (`disagreement.md`:
drawings and classes each member gets right that both others miss):

    python -m benchmarks.compare_models --mixed --seeds 42,1,2 --budget 15 data.raster.size=32

Equal budget: every run gets the same number of member-epochs (`--budget`): a single ResNet18 trains
`budget` epochs, a K-member ensemble `budget / K` epochs, so each run does about the same number of
ResNet18 forward/backward passes. Each run is an ordinary `python -m quickdraw.train` run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, SAMPLE_DIR, run
from quickdraw.core.files import markdown_table
from quickdraw.core.runs import RunDir
from quickdraw.data.sources import StoreSource
from quickdraw.metrics import classification as scoring

RUNS = [  # (label, experiment, extra overrides)
    ("ResNet18, fixed sampling", "resnet18", ["data.sampling=fixed"]),
    ("ResNet18, adaptive sampling", "resnet18", ["data.sampling=adaptive"]),
    ("ResNet18 penalised (fixed sampling)", "resnet18_penalized", ["data.sampling=fixed"]),
    ("Ensemble, classification layer", "ensemble_head", ["data.sampling=adaptive"]),
    ("Ensemble, averaging", "ensemble_mean", ["data.sampling=adaptive"]),
    # Not at the equal budget: the three trained ResNet18s above, averaged, with no further training.
    ("Averaging ensemble of runs 0-2 (3x budget)", "ensemble_mean", ["members=0,1,2"]),
]


# name: (training overrides, evaluation overrides); "base" is the plain ResNet18 every variant is
# paired with. Training overrides come after the command line's, so "128px" wins over a size there.
VARIANTS = {
    "base": ([], []),
    "tta": ([], ["tta=flip"]),
    "balance": ([], ["balance=true"]),
    "tta+balance": ([], ["tta=flip", "balance=true"]),
    "smooth": (["model.loss.label_smoothing=0.1"], []),
    "flipaug": (["data.augment.hflip=0.5"], []),
    "ema": (["callbacks=ema"], []),
    "64px": (["data.raster.size=64"], []),
    "128px": (["data.raster.size=128"], []),
    # Training on unfinished drawings: a share p of drawings cut to their first k strokes.
    "prefix25": (["data.augment.prefix=0.25"], []),
    "prefix50": (["data.augment.prefix=0.5"], []),
    "prefix75": (["data.augment.prefix=0.75"], []),
    "prefix50ink": (["data.augment.prefix=0.5", "data.augment.prefix_by=ink"], []),
    # Raw drawings (--source .../raw --test-input .../test_raw.csv): the temporal encoding's time
    # channel by point order, or by the recorded milliseconds.
    "temporal": (["data.raster.encoding=temporal"], []),
    "temporal_ms": (["data.raster.encoding=temporal", "data.raster.time_source=ms"], []),
    "all": (
        ["model.loss.label_smoothing=0.1", "data.augment.hflip=0.5", "callbacks=ema"],
        ["tta=flip", "balance=true"],
    ),
}


def test_overrides(args, generated: bool) -> list[str]:
    """What `quickdraw.evaluate` scores: the labelled test file, or the generated store's test split
    (the store every run here trains on: `data.synthetic_*` overrides and $QUICKDRAW_DATA honoured)."""
    if not generated:
        return [f"input={args.test_input}", f"labels={args.test_labels}"]
    synthetic = {
        key: int(o.split("=", 1)[1])
        for o in args.overrides
        for key in ("synthetic_per_class", "synthetic_seed")
        if o.startswith(f"data.{key}=")
    }
    data_dir = os.environ.get("QUICKDRAW_DATA", str(ROOT / "data"))
    return [f"store={StoreSource(cache_dir=data_dir, **synthetic).path}", "split=test"]


def run_dir_of(out: Path, i: int) -> Path:
    label, experiment, extra = RUNS[i]
    return out / f"{i}-{experiment}-{extra[0].split('=')[1].replace(',', '')}"


def class_tail(per_class_csv: Path) -> dict[str, float]:
    """The class tail (`quickdraw.metrics.classification.class_tail`) of an evaluation's per_class.csv."""
    acc = pd.read_csv(per_class_csv).query("count > 0")["accuracy"].to_numpy(float)
    return scoring.class_tail(acc)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--source", default=str(SAMPLE_DIR / "train_simplified.zip"),
                   help="what to train on: a source the converter reads, or 'generated' for the "
                        "generated doodle set (scored on its store's test split; --test-* unused)")  # fmt: skip
    p.add_argument("--test-input", default=str(SAMPLE_DIR / "test_simplified.csv"))
    p.add_argument("--test-labels", default=str(SAMPLE_DIR / "test_labels.csv"))
    p.add_argument("--budget", type=int, default=8, help="member-epochs per run")
    p.add_argument("--per-class", type=int, default=12, help="N: drawings per class per epoch")
    p.add_argument("--out", default=str(ROOT / "outputs" / "compare"))
    p.add_argument("--only", default=None, help="comma-separated run numbers (0-based) to run")
    p.add_argument("--variants", default=None, help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--seeds", default="42", help="comma-separated seeds (--variants)")
    p.add_argument("--mixed", action="store_true", help="mixed vs homogeneous ensembles, per seed")
    p.add_argument("--head-epochs", type=int, default=2, help="--mixed: epochs of the learned head")
    p.add_argument("overrides", nargs="*", help="Hydra overrides added to every training run")
    args = p.parse_args()
    generated = args.source == "generated"
    if not generated and not Path(args.source).exists():
        sys.exit(
            f"{args.source} not found: pass --source (or --source generated), --test-input and "
            "--test-labels"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The real sample is small: its store gets a bigger validation split and every drawing of it.
    where = [] if generated else [
        f"data.source={args.source}",
        "data.val_per_class=null",
        "data.test_per_class=null",
        "+data.convert_settings.val_fraction=0.15",
        "+data.convert_settings.test_fraction=0.05",
    ]  # fmt: skip
    common = [
        *where,
        f"data.per_class={args.per_class}",
        "callbacks.progress_bar.refresh_rate=0",
        *args.overrides,
    ]
    args.test = test_overrides(args, generated)
    if args.variants:
        return compare_variants(args, out, common)
    if args.mixed:
        return compare_mixed(args, out, common)
    chosen = [int(i) for i in args.only.split(",")] if args.only else range(len(RUNS))
    rows = []
    for i in chosen:
        label, experiment, extra = RUNS[i]
        members = 3 if experiment.startswith("ensemble") else 1
        epochs = max(1, round(args.budget / members))
        run_dir = run_dir_of(out, i)
        if extra[0].startswith("members="):  # an ensemble of earlier runs' best checkpoints
            members = [RunDir(run_dir_of(out, int(j))) for j in extra[0].split("=")[1].split(",")]
            ckpts = [m.best_link for m in members]
            if missing := [str(c) for c in ckpts if not c.exists()]:
                sys.exit(f"{label}: run those first ({', '.join(missing)} missing)")
            members_list = ",".join(str(c.resolve()) for c in ckpts)
            extra = ["model.net.freeze_members=true", f"model.net.checkpoints=[{members_list}]"]
            epochs = 0
        t0 = time.perf_counter()
        if not RunDir(run_dir).metrics_file.exists():
            run(
                [
                    sys.executable,
                    "-m",
                    "quickdraw.train",
                    f"experiment={experiment}",
                    *extra,
                    *common,
                    f"trainer.max_epochs={epochs}",
                    f"hydra.run.dir={run_dir}",
                ],
                run_dir.parent / f"{run_dir.name}.log",
            )
        minutes = (time.perf_counter() - t0) / 60
        metrics = RunDir(run_dir).metrics()
        evaluation = RunDir(run_dir / "eval")
        eval_dir = evaluation.path
        if not evaluation.metrics_file.exists():
            run(
                [
                    sys.executable,
                    "-m",
                    "quickdraw.evaluate",
                    f"ckpt_path={RunDir(run_dir).best_link}",
                    *args.test,
                    f"hydra.run.dir={eval_dir}",
                ],
                run_dir.parent / f"{run_dir.name}.eval.log",
            )
        scores = evaluation.metrics()
        rows.append(
            {
                "model": label,
                "experiment": experiment,
                "epochs": epochs,
                "train_minutes": round(metrics.get("seconds", minutes * 60) / 60, 1),
                "top1": scores["test/acc"],
                "top3": scores["test/acc3"],
                "map3": scores["test/map3"],
                **class_tail(evaluation.per_class_file),
                "drawings": scores["drawings"],
            }
        )
    header = [
        "model",
        "epochs",
        "train min",
        "top-1",
        "top-3",
        "MAP@3",
        "worst-decile class acc",
        "worst-half class acc",
        "classes never right",
    ]
    table = markdown_table(
        header,
        [
            [
                r["model"],
                r["epochs"],
                r["train_minutes"],
                r["top1"],
                r["top3"],
                r["map3"],
                r["worst_decile_acc"],
                r["worst_half_acc"],
                f"{r['classes_at_zero']} / {r['classes']}",
            ]
            for r in rows
        ],
        digits=3,
    )
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table)
    print(f"written: {out / 'results.md'}")


def train_and_evaluate(
    args, run_dir: Path, train: list[str], evaluate: list[str], tag: str
) -> dict:
    """Train `run_dir` once (`train` overrides) and score its best checkpoint with `evaluate`."""
    if not RunDir(run_dir).metrics_file.exists():
        run(
            [sys.executable, "-m", "quickdraw.train", "experiment=resnet18", *train,
             f"hydra.run.dir={run_dir}"],
            run_dir.parent / f"{run_dir.name}.log",  # not with_suffix: "prefix0.5" has a dot
        )  # fmt: skip
    return evaluate_run(args, run_dir, evaluate, tag)


def evaluate_run(args, run_dir: Path, evaluate: list[str], tag: str) -> dict:
    """metrics.json of `run_dir`'s best checkpoint scored on the test file with `evaluate`
    (evaluated once: `<run>/eval-<tag>/`)."""
    evaluation = RunDir(run_dir / f"eval-{tag}")
    if not evaluation.metrics_file.exists():
        run(
            [sys.executable, "-m", "quickdraw.evaluate", f"ckpt_path={RunDir(run_dir).best_link}",
             *args.test, *evaluate,
             f"hydra.run.dir={evaluation.path}"],
            run_dir.parent / f"{run_dir.name}.eval-{tag}.log",
        )  # fmt: skip
    return evaluation.metrics()


def sd(a: np.ndarray) -> float:
    """Sample standard deviation over seeds (NaN for one seed)."""
    return float(a.std(ddof=1)) if len(a) > 1 else float("nan")


def paired(results: dict[str, dict[int, dict]], name: str, key: str, seeds: list[int]) -> list[str]:
    """`key` of variant `name`: mean ± sd over seeds, the paired gain over base, the gain per seed."""
    values = np.array([results[name][s][key] for s in seeds], np.float64)
    gain = values - np.array([results["base"][s][key] for s in seeds], np.float64)
    return [
        f"{values.mean():.3f} ± {sd(values):.3f}",
        f"{gain.mean():+.3f} ± {sd(gain):.3f}",
        ", ".join(f"{g:+.3f}" for g in gain),
    ]


def run_key(train: list[str]) -> str:
    """The run folder name of a variant's training overrides (`base` for none)."""
    return "-".join(o.split("=")[0].split(".")[-1] + o.split("=")[1] for o in train) or "base"


def compare_variants(args, out: Path, common: list[str]) -> None:
    """Each variant against `base` on every seed: mean, spread and the paired gain."""
    names = args.variants.split(",")
    if unknown := [n for n in names if n not in VARIANTS]:
        sys.exit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = f"trainer.max_epochs={args.budget}"
    results: dict[str, dict[int, dict]] = {}
    for seed in seeds:
        for name in ["base", *[n for n in names if n != "base"]]:
            train, evaluate = VARIANTS[name]
            run_dir = out.resolve() / f"seed{seed}" / run_key(train)
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            overrides = [*common, epochs, f"seed={seed}", *train]
            tag = "-".join(e.replace("=", "") for e in evaluate) or "plain"
            results.setdefault(name, {})[seed] = train_and_evaluate(
                args, run_dir, overrides, evaluate, tag
            )
    order = ["base", *[n for n in names if n != "base"]]
    rows = []
    for name in order:
        top1 = np.array([results[name][s]["test/acc"] for s in seeds])
        rows.append(
            [name, " ".join(VARIANTS[name][0] + VARIANTS[name][1]) or "(plain)",
             f"{top1.mean():.3f} ± {sd(top1):.3f}", *paired(results, name, "test/map3", seeds)]
        )  # fmt: skip
    header = ["variant", "overrides", "top-1", "MAP@3", "MAP@3 gain (paired)", "gain per seed"]
    table = markdown_table(header, rows)
    (out / "variants.md").write_text(table)
    (out / "variants.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"seeds {seeds}, mean ± standard deviation\n{table}")
    print(f"written: {out / 'variants.md'}")
    compare_early(args, out, order, seeds)


def compare_early(args, out: Path, order: list[str], seeds: list[int]) -> None:
    """Each variant's seeds scored on prefixes by strokes (evaluate prefix=strokes), paired against base."""
    results: dict[str, dict[int, dict]] = {}
    for seed in seeds:
        for name in order:
            train, evaluate = VARIANTS[name]
            evaluate = [e for e in evaluate if not e.startswith("balance")] + ["prefix=strokes"]
            run_dir = out.resolve() / f"seed{seed}" / run_key(train)
            tag = "-".join(e.replace("=", "") for e in evaluate)
            results.setdefault(name, {})[seed] = evaluate_run(args, run_dir, evaluate, tag)
    keys = ["early/auc_top1", "early/median_fraction_first_stable", "test/acc"]
    rows = [
        [name, *(cell for k in keys for cell in paired(results, name, k, seeds))] for name in order
    ]
    header = ["variant"] + [
        f"{label}{part}"
        for label in ("early AUC top-1", "median fraction first stable", "final top-1")
        for part in ("", " gain (paired)", " gain per seed")
    ]
    table = markdown_table(header, rows)
    (out / "early.md").write_text(table)
    (out / "early.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"prefixes by strokes, seeds {seeds}, mean ± standard deviation\n{table}")
    print(f"written: {out / 'early.md'}")


# -- mixed ensembles -------------------------------------------------------------------------------
MEMBERS = {  # name: (label, training overrides); the mixed ensemble's members, in its order
    "gray": ("ResNet18, gray", ["experiment=resnet18"]),
    "temporal": ("ResNet18, temporal", ["experiment=resnet18", "+model.net.input=temporal"]),
    "lstm": ("stroke LSTM", ["experiment=strokes_lstm"]),
}
ENSEMBLES = {  # name: (label, members, training overrides)
    "mixed_mean": ("mixed averaging (gray + temporal + LSTM)", ["gray", "temporal", "lstm"],
                   ["experiment=ensemble_mixed"]),
    "homogeneous_mean": ("homogeneous averaging (3 gray ResNet18)", ["gray", "gray_1000", "gray_2000"],
                         ["experiment=ensemble_mean"]),
    "mixed_head": ("mixed, learned head over frozen members", ["gray", "temporal", "lstm"],
                   ["experiment=ensemble_mixed", "model.net.combine=head"]),
}  # fmt: skip


def scored_run(args, run_dir: Path, train: list[str]):
    """Train `run_dir` once, then score its best checkpoint on the test file, in this process
    (the per-drawing predictions feed the disagreement analysis): (Scores, evaluation metrics)."""
    from quickdraw.evaluation.score import evaluate
    from quickdraw.models.loading import load_model

    if not RunDir(run_dir).metrics_file.exists():
        run([sys.executable, "-m", "quickdraw.train", *train, f"hydra.run.dir={run_dir}"],
            run_dir.parent / f"{run_dir.name}.log")  # fmt: skip
    model = load_model(RunDir(run_dir).best_link)
    where = dict(o.split("=", 1) for o in args.test)  # input/labels, or store/split
    return evaluate(model, run_dir / "eval", **where)


def compare_mixed(args, out: Path, common: list[str]) -> None:
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict[int, dict]] = {}
    analyses = []
    for seed in seeds:
        root = out.resolve() / f"seed{seed}"
        root.mkdir(parents=True, exist_ok=True)
        scores, ckpts = {}, {}
        members = {**MEMBERS, **{f"gray_{k}": MEMBERS["gray"] for k in (1000, 2000)}}
        for name, (_, train) in members.items():
            member_seed = seed + int(name.split("_")[1]) if name.startswith("gray_") else seed
            overrides = [
                *train,
                *common,
                f"trainer.max_epochs={args.budget}",
                f"seed={member_seed}",
            ]
            scores[name], results.setdefault(name, {})[seed] = scored_run(
                args, root / name, overrides
            )
            ckpts[name] = RunDir(root / name).best_link.resolve()
        for name, (_, names, train) in ENSEMBLES.items():
            listed = ",".join(str(ckpts[n]) for n in names)
            epochs = args.head_epochs if "model.net.combine=head" in train else 1
            overrides = [*train, *common, f"seed={seed}", f"trainer.max_epochs={epochs}",
                         "model.net.freeze_members=true", f"model.net.checkpoints=[{listed}]"]  # fmt: skip
            results.setdefault(name, {})[seed] = scored_run(args, root / name, overrides)[1]
        analyses.append(disagreement(seed, {n: scores[n] for n in MEMBERS}))
    write_mixed_tables(out, seeds, results, analyses)


def disagreement(seed: int, scores: dict) -> str:
    """Per member: test drawings (and their classes) it gets right (top-1) that both others miss."""
    names = list(scores)
    labels = scores[names[0]].labels
    right = {n: s.topk[:, 0] == labels for n, s in scores.items()}
    classes = scores[names[0]].classes
    lines = [f"### seed {seed}\n",
             f"{len(labels)} drawings; every member right: {np.mean(np.all(list(right.values()), 0)):.3f}; "
             f"at least one right (oracle): {np.mean(np.any(list(right.values()), 0)):.3f}\n"]  # fmt: skip
    rows = []
    for n in names:
        alone = right[n] & ~np.any([right[m] for m in names if m != n], axis=0)
        counts = np.bincount(labels[alone], minlength=len(classes))
        top = np.argsort(-counts)[:8]
        where = ", ".join(f"{classes[c]} ({counts[c]})" for c in top if counts[c])
        rows.append([MEMBERS[n][0], f"{right[n].mean():.3f}", int(alone.sum()),
                     int((counts > 0).sum()), where or "-"])  # fmt: skip
    header = ["member", "top-1", "drawings only it gets right", "classes", "most such drawings"]
    return "\n".join(lines) + "\n" + markdown_table(header, rows)


def write_mixed_tables(out: Path, seeds: list[int], results: dict, analyses: list[str]) -> None:
    labels = {**{n: v[0] for n, v in MEMBERS.items()}, **{n: v[0] for n, v in ENSEMBLES.items()}}
    metric = lambda name, key: np.array([results[name][s][key] for s in seeds])  # noqa: E731
    rows = []
    for name, label in labels.items():
        top1, map3 = metric(name, "test/acc"), metric(name, "test/map3")
        rows.append([label, f"{top1.mean():.3f} ± {sd(top1):.3f}", f"{map3.mean():.3f} ± {sd(map3):.3f}",
                     ", ".join(f"{t:.3f}" for t in top1), ", ".join(f"{m:.3f}" for m in map3)])  # fmt: skip
    table = markdown_table(["model", "top-1", "MAP@3", "top-1 per seed", "MAP@3 per seed"], rows)
    best = np.max([metric(n, "test/map3") for n in MEMBERS], axis=0)  # best single member, per seed
    best_top1 = np.max([metric(n, "test/acc") for n in MEMBERS], axis=0)
    gains = []
    for name in ENSEMBLES:
        for ref, ref_map3, ref_top1 in (("best single member", best, best_top1),
                                        ("homogeneous averaging", metric("homogeneous_mean", "test/map3"),
                                         metric("homogeneous_mean", "test/acc"))):  # fmt: skip
            if name == "homogeneous_mean" and ref == "homogeneous averaging":
                continue
            g1, g3 = metric(name, "test/acc") - ref_top1, metric(name, "test/map3") - ref_map3
            gains.append([labels[name], ref, f"{g1.mean():+.3f} ± {sd(g1):.3f}",
                          f"{g3.mean():+.3f} ± {sd(g3):.3f}", ", ".join(f"{g:+.3f}" for g in g3)])  # fmt: skip
    gain_table = markdown_table(
        ["ensemble", "against", "top-1 gain", "MAP@3 gain", "MAP@3 gain per seed"], gains
    )
    text = f"seeds {seeds}, mean ± standard deviation\n\n{table}\n\npaired gains\n\n{gain_table}\n"
    (out / "mixed.md").write_text(text)
    (out / "mixed.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "disagreement.md").write_text("\n\n".join(analyses) + "\n")
    print(text + "\n" + "\n\n".join(analyses))
    print(f"written: {out / 'mixed.md'}, {out / 'disagreement.md'}")


if __name__ == "__main__":
    main()
