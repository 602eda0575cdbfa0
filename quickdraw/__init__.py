"""quickdraw: recognise Quick, Draw! doodles, from the compressed CSVs to a live sketchpad."""

from pathlib import Path

from omegaconf import OmegaConf

from quickdraw.core.outputs import unique_folder

__version__ = "0.1.0"


def project_root() -> str:
    """The checkout holding pyproject.toml (editable installs), else the current directory: an
    installed package writes `outputs/` and `data/` where its command starts
    (tests/test_wheel.py)."""
    here = Path(__file__).resolve().parent.parent
    return str(here if (here / "pyproject.toml").is_file() else Path.cwd())


# Configs say ${project_root:} so that no path depends on where a command is started.
if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", project_root)
# Run folders say ${unique_dir:PATH}: PATH, or PATH_1, PATH_2... when it exists, created at once so
# that commands started in the same second never share one. Cached: Hydra resolves a run folder
# more than once (and copies the cache into each multirun job), always to the same folder.
if not OmegaConf.has_resolver("unique_dir"):
    OmegaConf.register_new_resolver("unique_dir", unique_folder, use_cache=True)
