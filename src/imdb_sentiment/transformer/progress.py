"""What a person sees while `train_distilbert` runs: progress bars labelled with the stage,
the epoch and what is being done, and, on a CPU, one warning with the time the whole run
will take at the pace of its first steps.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("imdb_sentiment.train_distilbert")

# Steps timed before the estimate, and the longest CPU run that needs no warning.
PACE_STEPS = 3
QUIET_SECONDS = 15 * 60
# What the CPU warning suggests: a capped slice for a run on all the data; for a run on a
# slice already (`make quick`, or prepare.max_train_samples set), a smaller model.
FULL_DATA_ADVICE = "`make quick` trains on a capped slice instead"
CAPPED_DATA_ADVICE = (
    "the training reviews are capped already; a smaller model (model.name, or MODEL= for "
    "`make quick`) trains faster"
)


def slow_cpu_advice(max_train_samples: int | None) -> str:
    """What the CPU warning suggests, for a run on all the data or on a capped slice."""
    return FULL_DATA_ADVICE if max_train_samples is None else CAPPED_DATA_ADVICE


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{max(1, round(seconds / 60))} minutes"


def progress_callbacks(stage: str, advice: str = FULL_DATA_ADVICE) -> list[Any]:
    """Callbacks that replace the Trainer's unlabelled progress bar (built lazily so that
    importing this module does not import transformers)."""
    from tqdm.auto import tqdm
    from transformers import ProgressCallback, TrainerCallback
    from transformers.trainer_utils import has_length

    class LabelledProgress(ProgressCallback):
        def _label(self, state: Any) -> str:
            epochs = max(1, math.ceil(state.num_train_epochs or 1))
            epoch = min(epochs, int(state.epoch or 0) + 1)
            return f"{stage} epoch {epoch}/{epochs}"

        # Both bars are made here, labelled, in place of the Trainer's own code that makes
        # them without a label (tqdm draws a bar as soon as it is made).
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                label = self._label(state)
                self.training_bar = tqdm(total=state.max_steps, desc=label, dynamic_ncols=True)
            self.current_step = 0

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.training_bar is not None:
                self.training_bar.set_description(self._label(state))

        def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            loader = kwargs.get("eval_dataloader")
            if self.prediction_bar is None and state.is_world_process_zero and has_length(loader):
                self.prediction_bar = tqdm(
                    total=len(loader),
                    desc=f"{stage} validation",
                    leave=self.training_bar is None,
                    dynamic_ncols=True,
                )
            super().on_prediction_step(args, state, control, **kwargs)

    class CpuPace(TrainerCallback):
        """After the first steps on a CPU, say how long the whole run will take, once."""

        def __init__(self) -> None:
            self.started: float | None = None
            self.first_step = 0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.started is None:
                self.started, self.first_step = time.perf_counter(), state.global_step

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            done = state.global_step - self.first_step
            if args.device.type != "cpu" or done != PACE_STEPS or not state.is_world_process_zero:
                return
            per_step = (time.perf_counter() - self.started) / done
            left = per_step * (state.max_steps - state.global_step)
            if left > QUIET_SECONDS:
                log.warning(
                    "fine-tuning on a CPU: about %s for %d steps at this pace (a GPU takes "
                    "minutes); %s",
                    _duration(left),
                    state.max_steps,
                    advice,
                )

    return [LabelledProgress(), CpuPace()]


def use_labelled_progress(trainer: Any, stage: str, advice: str = FULL_DATA_ADVICE) -> None:
    """Swap the Trainer's unlabelled progress bar for `progress_callbacks(stage, advice)`."""
    from transformers import ProgressCallback

    trainer.remove_callback(ProgressCallback)
    for callback in progress_callbacks(stage, advice):
        trainer.add_callback(callback)


@contextmanager
def without_load_report() -> Iterator[None]:
    """Silence transformers' load report while a base model gets its new classification
    head: the head's weights are missing from the checkpoint by design."""
    import transformers

    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(previous)
