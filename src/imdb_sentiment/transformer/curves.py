"""Training curves for DVC: a TrainerCallback that writes each Trainer log to DVCLive.

Not transformers' built-in DVCLive callback (`report_to="dvclive"`), for two reasons: the
x axis here is the global step of every log (eval included), and a resumed run replays
the history kept in its checkpoint, so its files equal those of a run that was never
stopped. Timings are left out, so two identical runs write identical files; DVCLive makes
no experiment and no dvc.yaml of its own, since dvc.yaml declares these plots.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Logged values that change from run to run (wall time, throughput).
TIMING_KEY = re.compile(r"(runtime|per_second)$")


def live_metric_name(key: str) -> str | None:
    """The DVCLive name of a Trainer log key (`eval_accuracy` -> `eval/accuracy`, `loss` ->
    `train/loss`), or None for what is not plotted: timings, which differ between identical
    runs, and bookkeeping (`epoch`, `step`, `total_flos`)."""
    # `train_loss`, logged once at the end, is the mean loss since the start or since a
    # resume: it would differ between a resumed run and one that was never stopped.
    if key in ("step", "epoch", "total_flos", "train_loss") or TIMING_KEY.search(key):
        return None
    if key.startswith("eval_"):
        return f"eval/{key[len('eval_') :]}"
    return f"train/{key}"


def _sorted_mapping(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted_mapping(value[key]) for key in sorted(value)}
    return value


def live_callback(live_dir: Path) -> Any:
    """A TrainerCallback that writes each Trainer log once to DVCLive, at x = global step."""
    from transformers import TrainerCallback

    class LiveCallback(TrainerCallback):
        def __init__(self) -> None:
            self.live: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            from dvclive import Live

            self.live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
            for entry in state.log_history:  # non-empty when resuming from a checkpoint
                self._write(entry)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            return self._log_before_save(control)

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            return self._log_before_save(control)

        @staticmethod
        def _log_before_save(control: Any) -> Any:
            # The logged loss is the mean since the last log, and a resumed Trainer starts a
            # new mean at its checkpoint: logging at every save makes both runs' means cover
            # the same steps, so a resumed run logs what an uninterrupted one does.
            if control.should_save:
                control.should_log = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs=None, **kwargs: Any) -> None:
            if self.live is not None and logs:
                self._write({**logs, "step": state.global_step})

        def _write(self, entry: Mapping[str, Any]) -> None:
            self.live.step = int(entry.get("step", 0))
            for key, value in entry.items():
                name = live_metric_name(key)
                if name and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.live.log_metric(name, value)
            # Sorted, so that a replayed history writes the same file as the live one.
            self.live.summary = _sorted_mapping(self.live.summary)
            self.live.make_summary()

    return LiveCallback()
