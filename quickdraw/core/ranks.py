"""Which process of a distributed run this one is, read from the variables launchers set.

Lightning and torchrun set `RANK` (across all nodes), `NODE_RANK` and `LOCAL_RANK` (on this node);
SLURM sets `SLURM_PROCID` (across all nodes) and `SLURM_LOCALID` (on this node). A process started
by none of them is the only one: rank 0 everywhere. Read here only, so that "the first process"
means the same to the run folder's checks and to the store's conversion.
"""

from __future__ import annotations

import os


def local_rank() -> int:
    """This process's rank on its node: Lightning's and torchrun's `LOCAL_RANK`, SLURM's
    `SLURM_LOCALID`; the first process of each node (0) builds what the node's processes share."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))


def launching_process() -> bool:
    """Whether this is the process that starts a run (rank 0 of node 0), from the variables DDP
    launchers set (Lightning, torchrun, SLURM); a process without any of them is."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(os.environ.get(name, "0") == "0" for name in ranks)
