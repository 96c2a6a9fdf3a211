"""Training in several processes: `train_distilbert.num_processes > 1` replaces the stage's
process with `torchrun`, which starts one process per GPU.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("imdb_sentiment.trainer")


def relaunch_with_torchrun(num_processes: int) -> None:
    """Replace this process by `torchrun` running the stage in `num_processes` processes."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={num_processes}",
        "-m",
        "imdb_sentiment.stages.train_distilbert",
    ]
    log.info("starting %d processes: %s", num_processes, " ".join(command[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)
