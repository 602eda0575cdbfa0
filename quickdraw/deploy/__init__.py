"""A checkpoint as an ONNX graph, int8 model, static web page and model folder to share, and the onnxruntime backend that runs it."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "hub": ["export_hub"],
        "onnx": ["ExportError", "Quantization", "WebPage", "export_checkpoint"],
        "runtime": ["OnnxModel", "load_backend"],
        "web": ["build_page"],
    },
)
