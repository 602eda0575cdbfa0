"""Files, run folders and checkpoint discovery, checkpoint reading, config schemas, how a command
runs and reports errors, and the project's errors (no Lightning)."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "checkpoints": [
            "CheckpointError",
            "CheckpointWriteError",
            "load_net_weights",
            "read_checkpoint",
        ],
        "commands": ["absolute", "command", "quoting_hint", "reported", "user_message"],
        "config": ["signature_schema"],
        "discovery": ["Choice", "best_run", "choose_checkpoint"],
        "errors": ["InputError", "MissingPathError", "QuickDrawError", "SettingError"],
        "files": [
            "DiskFullError",
            "atomic_open",
            "atomic_path",
            "markdown_table",
            "write_atomic",
            "write_json",
        ],
        "outputs": ["OverwriteError", "refuse_overwrite", "unique_folder"],
        "ranks": ["launching_process", "local_rank"],
        "runs": [
            "KeepEarlierRuns",
            "RunDir",
            "RunFolderError",
            "SweepSummary",
            "find_runs",
        ],
    },
)
