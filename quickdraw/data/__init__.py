"""Drawings from files to model inputs: formats and readers, the Parquet store, strokes, rasters and sequences, sampling, the DataModule."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["formats"],
    submod_attrs={
        "augment": ["StrokeAugment"],
        "conversion": ["convert"],
        "convert_file": ["ConvertSettings"],
        "datamodule": ["QuickDrawDataModule"],
        "dataset": ["StrokeDataset"],
        "images": ["image_to_strokes"],
        "input_files": ["InputBatch", "InputStats", "iter_input"],
        "inputs": ["InputSpec", "build_inputs"],
        "labels": ["LabelMatcher", "load_labels", "word_key"],
        "listing": ["discover_sources", "list_sources"],
        "parsing": ["parse_drawing", "parse_timed_drawing"],
        "prefixes": ["growing_prefixes"],
        "raster": ["RasterSpec", "rasterize"],
        "readers": ["iter_records"],
        "sampling": ["epoch_rows", "fixed_rows"],
        "schema": ["Manifest"],
        "sequence": ["SequenceSpec"],
        "simplify": ["simplify_drawing"],
        "sources": ["StoreSource", "ensure_store", "ensure_store_of"],
        "store": ["Store", "StoreError"],
        "strokes": ["StrokeBatch"],
        "synthetic": ["generate"],
    },
)
