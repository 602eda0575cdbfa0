"""A checkpoint as an ONNX graph, int8 model and static web page, and the onnxruntime backend that runs it."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "onnx": ["ExportError", "Quantization", "WebPage", "export_checkpoint"],
        "runtime": ["OnnxModel", "load_backend"],
        "web": ["build_page"],
    },
)
