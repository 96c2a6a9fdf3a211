"""The project's Trainer: the pieces `train_distilbert` adds to the Hugging Face Trainer.

- batches of reviews of similar length (less padding), drawn from `seed + epoch` so that
  every process and a resumed run see the same order (transformers' own sampler draws from
  a generator that a resume does not restore);
- evaluation longest first, with dynamic padding and the argmax taken on the device before
  predictions are gathered;
- the loss of a sequence classifier left as the model computes it (see ProjectTrainer);
- the precision to train in, the relaunch under torchrun, and the metrics of the model
  the Trainer kept.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from stages.errors import StageError

log = logging.getLogger("imdb_sentiment.trainer")

METRIC_NAMES = ("accuracy", "precision", "recall", "f1")


class EpochSeededLengthGroupedSampler:
    """Length-grouped shuffling (as transformers' LengthGroupedSampler) drawn from
    `seed + epoch`, so every process and a resumed run see the same order."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class LengthSortedSampler:
    """Evaluation order: longest first, so batches hold similar lengths (little padding)
    and an out-of-memory error shows on the first batch, not the last."""

    def __init__(self, lengths: list[int]) -> None:
        self.order = [int(i) for i in np.argsort(-np.asarray(lengths), kind="stable")]

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)


class ModelInputCollator:
    """Pad a batch dynamically (DataCollatorWithPadding) after dropping the columns that
    are there for the samplers, not for the model."""

    def __init__(self, tokenizer: Any, pad_to_multiple_of: int | None = None) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        keep = ("input_ids", "attention_mask", "label", "labels")
        return self.pad([{k: v for k, v in f.items() if k in keep} for f in features])


def argmax_logits(logits: Any, labels: Any) -> Any:
    """preprocess_logits_for_metrics: keep the predicted label only, before gathering."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    predictions, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:  # full logits (train.argmax_logits: false)
        predictions = predictions.argmax(axis=-1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, average="binary", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def make_trainer_class() -> type:
    """A Trainer whose samplers follow `group_by_length` / `eval_group_by_length` (built
    lazily so importing this module does not import transformers)."""
    from transformers import Trainer

    class ProjectTrainer(Trainer):
        def __init__(
            self, *args: Any, group_by_length: bool, eval_group_by_length: bool, **kwargs: Any
        ) -> None:
            self.group_by_length = group_by_length
            self.eval_group_by_length = eval_group_by_length
            super().__init__(*args, **kwargs)
            # A sequence classifier's loss is a mean over its batch and ignores the
            # `num_items_in_batch` the Trainer would pass it; were the Trainer told the model
            # uses it, it would multiply the loss (and so the gradients, before clipping) by
            # the number of processes and skip dividing by the accumulation steps.
            self.model_accepts_loss_kwargs = False

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not self.group_by_length or "length" not in dataset.column_names:
                return super()._get_train_sampler(train_dataset)
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return EpochSeededLengthGroupedSampler(
                list(dataset["length"]), batch * max(1, self.args.world_size), self.args.seed
            )

        def _get_eval_sampler(self, eval_dataset: Any) -> Any:
            if self.eval_group_by_length and "length" in eval_dataset.column_names:
                return LengthSortedSampler(list(eval_dataset["length"]))
            import torch

            return torch.utils.data.SequentialSampler(eval_dataset)

    return ProjectTrainer


def build_trainer(
    args: Any,
    model: Any,
    tokenizer: Any,
    *,
    group_by_length: bool = True,
    eval_group_by_length: bool = True,
    argmax_before_gather: bool = True,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """The project's Trainer: dynamic padding, length-grouped batches, argmax before gather."""
    pad_multiple = 8 if (args.bf16 or args.fp16) else None  # tensor cores like multiples of 8
    return make_trainer_class()(
        model=model,
        args=args,
        group_by_length=group_by_length,
        eval_group_by_length=eval_group_by_length,
        data_collator=ModelInputCollator(tokenizer, pad_to_multiple_of=pad_multiple),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=argmax_logits if argmax_before_gather else None,
        callbacks=callbacks,
    )


def resolve_mixed_precision(setting: str) -> str:
    """`auto` -> bf16 where the GPU has it, else fp16 on CUDA, else no (fp32)."""
    import torch

    cuda = torch.cuda.is_available()
    if setting == "auto":
        if cuda and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp16" if cuda else "no"
    if setting in ("bf16", "fp16") and not cuda:
        raise StageError(
            f"params.yaml: train_distilbert.mixed_precision = {setting!r} needs a CUDA GPU"
        )
    return setting


def relaunch_with_torchrun(num_processes: int) -> None:
    """Replace this process by `torchrun` running the stage in `num_processes` processes."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={num_processes}",
        "-m",
        "stages.train_distilbert",
    ]
    log.info("starting %d processes: %s", num_processes, " ".join(command[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def chosen_metrics(
    state: Any, load_best: bool, metric_names: tuple[str, ...] = METRIC_NAMES
) -> dict[str, Any]:
    """The validation metrics of the model that is saved (the best evaluation when
    `load_best_model_at_end`, else the last one) and the last logged training loss (the
    Trainer's run mean covers only the steps since a resume, so it would differ after a
    kill)."""
    evals = [entry for entry in state.log_history if "eval_loss" in entry]
    chosen = evals[-1] if evals else {}
    if evals and load_best and state.best_global_step is not None:
        chosen = next((entry for entry in evals if entry["step"] == state.best_global_step), chosen)
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    return {
        # The mean cross-entropy is the log loss, named as the other models' metrics are.
        "validation": {
            "log_loss" if name == "loss" else name: chosen[f"eval_{name}"]
            for name in (*metric_names, "loss")
            if f"eval_{name}" in chosen
        },
        "best_epoch": chosen.get("epoch"),
        "best_step": chosen.get("step"),
        "global_step": state.global_step,
        "train_loss": losses[-1] if losses else None,
    }


def load_datasets(data_dir: Path) -> Any:
    """The tokenized splits (a `datasets.DatasetDict`), with train and validation."""
    import datasets

    if not data_dir.exists():
        raise StageError(f"{data_dir} is missing: run `dvc repro tokenize` first")
    dataset = datasets.load_from_disk(str(data_dir))
    missing = {"train", "validation"} - set(dataset)
    if missing:
        raise StageError(f"{data_dir}: no {sorted(missing)} split")
    return dataset
