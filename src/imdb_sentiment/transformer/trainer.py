"""The project's Trainer: the pieces `train_distilbert` adds to the Hugging Face Trainer.

- the samplers of `transformer.samplers` (length-grouped, seeded per epoch);
- dynamic padding, with the columns the samplers read dropped before the model;
- the logits reduced to P(positive) on the device before predictions are gathered;
- the loss of a sequence classifier left as the model computes it (see ProjectTrainer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imdb_sentiment.evaluation.metrics import classification_metrics, positive_proba
from imdb_sentiment.transformer.samplers import EpochSeededLengthGroupedSampler, LengthSortedSampler

# The validation metrics the Trainer computes; its eval loss is the log loss.
METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc")


class ModelInputCollator:
    """Pad a batch dynamically (DataCollatorWithPadding) after dropping the columns that
    are there for the samplers, not for the model."""

    def __init__(self, tokenizer: Any, pad_to_multiple_of: int | None = None) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        keep = ("input_ids", "attention_mask", "label", "labels")
        return self.pad([{k: v for k, v in f.items() if k in keep} for f in features])


def reduce_logits(logits: Any, labels: Any) -> Any:
    """preprocess_logits_for_metrics: keep P(positive) only (one number per review, from
    which the label and ROC AUC follow), before gathering."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.float().softmax(dim=-1)[:, 1]


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """The Trainer's validation metrics: `evaluation.metrics.classification_metrics` of
    P(positive), less the log loss (the Trainer's eval loss) and an undefined ROC AUC."""
    predictions = eval_pred.predictions
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:  # full logits (train_distilbert.reduce_logits: false)
        predictions = positive_proba(predictions)
    metrics = classification_metrics(eval_pred.label_ids, predictions)
    return {name: metrics[name] for name in METRIC_NAMES if metrics[name] is not None}


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
    reduce_before_gather: bool = True,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """The project's Trainer: dynamic padding, length-grouped batches, P(positive) before
    gather."""
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
        preprocess_logits_for_metrics=reduce_logits if reduce_before_gather else None,
        callbacks=callbacks,
    )
