"""`train_distilbert`'s params and the `TrainingArguments` built from them: every key that is
a TrainingArguments field passes through by name, the others (precision, samplers,
processes, Hub push) the project acts on itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.params import Params

Strategy = Literal["no", "steps", "epoch"]
Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
]


class TrainParams(Params):
    # Checkpoints: outside the stage's outs so that a killed `dvc repro` resumes from them.
    output_dir: str = Field("checkpoints/distilbert", min_length=1)
    learning_rate: float = Field(3e-5, gt=0, le=1)
    per_device_train_batch_size: int = Field(32, ge=1)
    per_device_eval_batch_size: int = Field(128, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_train_epochs: float = Field(3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    # Share of the optimizer steps spent warming the learning rate up from 0.
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler_type: Scheduler = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    eval_strategy: Strategy = "epoch"
    save_strategy: Strategy = "epoch"
    # Only used with the "steps" strategies.
    eval_steps: int | None = Field(None, ge=1)
    save_steps: int | None = Field(None, ge=1)
    logging_steps: int = Field(50, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    load_best_model_at_end: bool = True
    metric_for_best_model: Literal["accuracy", "f1", "loss"] = "accuracy"
    # auto: bf16 where the GPU supports it, else fp16 on CUDA, else fp32.
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = "auto"
    # Bit-exact GPU runs (slower). CPU runs use deterministic algorithms always.
    full_determinism: bool = False
    # Batches of reviews of similar length (less padding); eval batches sorted by length.
    group_by_length: bool = True
    eval_group_by_length: bool = True
    # Reduce logits to P(positive) on the device, before they are gathered.
    reduce_logits: bool = True
    # Processes that train together (one per GPU); > 1 relaunches the stage under torchrun.
    num_processes: int = Field(1, ge=1)
    push_to_hub: bool = False
    hub_model_id: str | None = Field(None, min_length=1)


# Keys the project acts on itself; every other key is a TrainingArguments field of that name.
PROJECT_KEYS = {
    "warmup_ratio",
    "mixed_precision",
    "group_by_length",
    "eval_group_by_length",
    "reduce_logits",
    "num_processes",
    "push_to_hub",
    "hub_model_id",
}


def build_training_arguments(config: TrainParams, seed: int, **overrides: Any) -> Any:
    """TrainingArguments from the validated params; `overrides` are for benchmarks only."""
    import torch
    from transformers import TrainingArguments

    precision = resolve_mixed_precision(config.mixed_precision)
    kwargs = config.model_dump(exclude=PROJECT_KEYS, exclude_none=True)
    kwargs.update(
        # transformers 5: a float in [0, 1) is a share of the total steps.
        warmup_steps=config.warmup_ratio,
        greater_is_better=config.metric_for_best_model != "loss",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        # Without a GPU, say so: accelerate then sees the processes of `torchrun` as one
        # multi-CPU run (gloo backend) instead of as separate single runs.
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        logging_strategy="steps",
        # DVCLive is attached as a callback; the Hub push is the stage's own, once, at the
        # end (the Trainer's would create the repo before training and push checkpoints).
        report_to="none",
        push_to_hub=False,
        # The collator drops the `length` column that the samplers read.
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    kwargs.update(overrides)
    try:
        return TrainingArguments(**kwargs)
    except ValueError as exc:
        raise StageError(f"params.yaml: train_distilbert: {' '.join(str(exc).split())}") from exc


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
