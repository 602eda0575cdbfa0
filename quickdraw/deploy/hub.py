"""A model folder to share on a model hub (`python -m quickdraw.export format=hub out=DIR`).

What model hubs and their users expect, in the layout of [`quickdraw.models.hub`][quickdraw.models.hub]:
`model.safetensors` (the weights, no pickle), `config.json` (classes, the input contract, where
the training drawings came from, the model's build config, the run's measured metrics), the ONNX
export (`model.onnx` + `model.json`, fp32) where the model reads one raster image, and a model card, `README.md`. Uploading it is one command
(`huggingface-cli upload USER/NAME DIR .`, docs/guides/export.md); nothing here uses the network.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import quickdraw
from quickdraw.core.checkpoints import read_checkpoint
from quickdraw.core.files import atomic_path, json_text, write_atomic, write_json
from quickdraw.core.outputs import refuse_overwrite
from quickdraw.core.runs import TRAIN, RunDir
from quickdraw.data.origin import GENERATED, MIXED, QUICKDRAW
from quickdraw.deploy.onnx import FP32, SIDECAR, ExportError, export_onnx, raster_contract, sidecar
from quickdraw.inference.runner import model_inputs
from quickdraw.models.hub import (
    CARD,
    CONFIG,
    FORMAT_VERSION,
    HUB_FORMAT,
    WEIGHTS,
    read_model_folder,
    refuse_file_of_a_folder,
)
from quickdraw.models.loading import load_model, untrusted_targets, upgrade_hparams

log = logging.getLogger(__name__)

FILES = (WEIGHTS, CONFIG, CARD, FP32, SIDECAR)  # what a model folder holds
# The run metrics the card and config.json report, in this order.
REPORTED = ("test/acc", "test/acc3", "test/map3", "val/acc", "val/map3", "val/map3_best")
CREDIT = {
    QUICKDRAW: "Google's Quick, Draw! data (Google Creative Lab), released under CC BY 4.0 "
    "(https://quickdraw.withgoogle.com/data): credit it wherever this model is used.",
    GENERATED: "the quickdraw project's generated doodles (quickdraw.data.synthetic), not "
    "Quick, Draw! data; no licence constraints.",
    MIXED: "Google's Quick, Draw! data (CC BY 4.0, https://quickdraw.withgoogle.com/data: credit "
    "it) and the quickdraw project's generated doodles.",
}
NOT_RECORDED = "not recorded in the checkpoint (it predates the record)."
PREPROCESSING = (
    "Strokes are Google's simplified format (Ramer-Douglas-Peucker, epsilon 2.0, coordinates "
    "0-255); raw strokes are simplified the same way first (quickdraw.data.parsing). The drawing "
    "is rasterised by quickdraw.data.raster: white ink (255) on black (0), uint8, layout NCHW; "
    "the numbers any re-implementation needs are config.json's `input.raster`. The network "
    "scales by 1/255 itself."
)


def export_hub(ckpt_path: str | Path, out: str | Path) -> Path:
    """Write the model folder for `ckpt_path` (a `.ckpt` or another model folder) into `out`.

    Raises ExportError for a build config naming code outside the allow-list (such a folder
    could not be loaded), CheckpointError for a foreign file, OverwriteError (before any work)
    when `out` holds or lies inside what it reads. Returns `out`.
    """
    from safetensors.torch import save_file

    src, out = Path(ckpt_path), Path(out)
    refuse_overwrite(
        {f"out ({name})": out / name for name in FILES},
        {"ckpt_path": src},
        "Export into another folder (out=DIR).",
    )
    refuse_file_of_a_folder(src)
    source = read_model_folder(src) if src.is_dir() else read_checkpoint(src)
    hparams = upgrade_hparams(source.get("hyper_parameters") or {})
    if refused := untrusted_targets(hparams):
        raise ExportError(
            f"{src} names code outside this project to build its model ({'; '.join(refused[:3])}); "
            "a model folder may only name quickdraw.models.* and torch.optim.*"
        )
    model = load_model(src)  # checks the allow-list and that the weights fit
    if hasattr(model.net, "portable_config"):  # an ensemble: its members' weights are inside
        hparams["net"] = model.net.portable_config(hparams["net"])
    out.mkdir(parents=True, exist_ok=True)
    # Contiguous copies: channels_last weights are strided views safetensors does not store.
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    # Written beside its name and renamed (a full disk leaves no half file), readable like the
    # folder's other files (safetensors writes owner-only).
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": HUB_FORMAT})
        tmp.chmod(0o644)
    onnx = _onnx(model, out)
    metrics = run_metrics(src)
    config = {
        "format": HUB_FORMAT,
        "format_version": FORMAT_VERSION,
        "quickdraw_version": quickdraw.__version__,
        "arch": _arch(model),
        "classes": list(hparams["classes"]),
        "input": input_contract(model),
        "preprocessing": PREPROCESSING,
        "data": {
            "origin": hparams.get("data_origin"),
            "credit": credit(hparams.get("data_origin")),
        },
        "hyper_parameters": hparams,
        "metrics": metrics,
        "files": {"weights": WEIGHTS, **onnx},
        "exported_from": src.name,
    }
    write_json(out / CONFIG, config)
    write_atomic(out / CARD, model_card(config))
    log.info("model folder: %s (upload: huggingface-cli upload USER/NAME %s .)", out, out)
    return out


def _onnx(model, out: Path) -> dict[str, Any]:
    """The ONNX files, where the model has an ONNX form; their names for config.json."""
    try:
        export_onnx(model, out)
    except ExportError as e:  # a mixed model: the weights alone, and why
        log.warning("no ONNX export in the model folder: %s", e)
        return {"onnx": None, "onnx_note": str(e)}
    return {"onnx": FP32, "onnx_sidecar": SIDECAR}


def input_contract(model) -> dict[str, Any]:
    """What the network reads, for every input: the raster contract (`raster_contract`) of an
    image, the config of any other input (pen-move sequences)."""
    inputs = {}
    for name, spec in model_inputs(model).items():
        if hasattr(spec, "encoding"):
            inputs[name] = {
                "dtype": "uint8",
                "shape": ["batch", spec.channels, spec.size, spec.size],
                "raster": raster_contract(spec) if spec.channels == 1 or spec.time_source == "order"
                else {"size": spec.size, "encoding": spec.encoding, "time_source": spec.time_source},
            }  # fmt: skip
        else:
            inputs[name] = {"describe": spec.describe()}
    return inputs


def run_metrics(ckpt: Path) -> dict[str, Any]:
    """The measured metrics of the run that wrote `ckpt` (its run folder's metrics.json, or a
    model folder's config.json); `{"note": ...}` when the checkpoint lies outside a run folder."""
    if ckpt.is_dir():
        return json.loads((ckpt / CONFIG).read_text()).get("metrics", {})
    run = RunDir(ckpt.resolve().parents[1])
    if run.kind != TRAIN:
        return {"note": f"not recorded: {ckpt} lies outside a training run folder"}
    found = run.metrics()
    return {
        "run": run.path.name,
        "experiment": found.get("experiment"),
        "epochs": found.get("epochs"),
        **{k: found[k] for k in REPORTED if isinstance(found.get(k), int | float)},
    }


def credit(origin: str | None) -> str:
    return CREDIT.get(origin or "", NOT_RECORDED)


def _arch(model) -> str:
    try:
        return sidecar(model)["arch"]
    except ExportError:
        net = model.net
        return (
            f"ensemble of {net.num_members}" if hasattr(net, "num_members") else type(net).__name__
        )


def model_card(config: dict[str, Any]) -> str:
    """The folder's README.md: front matter for the hub, then what the model is and how to use it."""
    origin = config["data"]["origin"]
    licence = "cc-by-4.0" if origin in (QUICKDRAW, MIXED) else "mit"
    classes = config["classes"]
    metrics = {k: v for k, v in config["metrics"].items() if k in REPORTED}
    rows = "\n".join(f"| `{k}` | {v:.4f} |" for k, v in metrics.items())
    measured = (
        f"Measured by the training run `{config['metrics'].get('run')}` "
        f"(experiment `{config['metrics'].get('experiment')}`, {config['metrics'].get('epochs')} "
        f"epochs) on its own validation and test splits:\n\n| metric | value |\n|---|---:|\n{rows}"
        if metrics
        else f"Not recorded ({config['metrics'].get('note', 'no metrics')})."
    )
    inputs = "\n".join(
        f"- `{name}`: {json_text({k: v for k, v in spec.items() if k != 'raster'}, indent=None)}"
        + (f", raster `{json_text(spec['raster'], indent=None)}`" if "raster" in spec else "")
        for name, spec in config["input"].items()
    )
    onnx = config["files"].get("onnx")
    onnx_use = (
        f"""ONNX (onnxruntime, any language): `{onnx}` takes `image`, uint8 `(batch, C, H, W)`, and
returns `probs`, `(batch, {len(classes)})` probabilities in the order of `classes`:

```python
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("{onnx}")
probs = session.run(None, {{"image": images}})[0]   # images: uint8 (B, C, H, W), rasterised as above
```
"""
        if onnx
        else f"No ONNX form: {config['files'].get('onnx_note')}\n"
    )
    return f"""---
license: {licence}
library_name: quickdraw
tags: [quickdraw, sketch-recognition, image-classification, doodles]
pipeline_tag: image-classification
---

# {config["arch"]}: {len(classes)} Quick, Draw! classes

A doodle classifier trained with quickdraw {config["quickdraw_version"]}:
it names what a drawing shows, from strokes rasterised into a small image.

## Architecture

{config["arch"]}; build config (`config.json` `hyper_parameters.net`):

```json
{json_text(config["hyper_parameters"].get("net"), indent=2)}
```

## Classes

{len(classes)} classes, in output order: {", ".join(classes)}.

## Data and licence

Trained on {credit(origin)}

## Metrics

{measured}

## Preprocessing contract

{config["preprocessing"]}

{inputs}

## How to load it

With quickdraw installed (`pip install -e .` in its repository), this folder works wherever a
checkpoint does, and loads without unpickling anything (`model.safetensors` + `config.json`):

```bash
python -m quickdraw.evaluate ckpt_path=THIS_FOLDER input=test_simplified.csv labels=test_labels.csv
python -m quickdraw.demo ckpt_path=THIS_FOLDER
python -m quickdraw.predict ckpt_path=THIS_FOLDER input=test_simplified.csv output=submission.csv
```

```python
from quickdraw.models.loading import load_model
model = load_model("THIS_FOLDER")            # a QuickDrawModule in eval mode
probs = model.predict_proba(images)          # images: uint8 tensor (B, C, H, W)
```

{onnx_use}
"""
