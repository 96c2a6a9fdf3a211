"""train_distilbert: fine-tune a transformer (DistilBERT by default) with the Trainer API.

Reads the tokenized splits (`data/tokenized/hf/`) and `model.name`, fine-tunes with every
`TrainingArguments` value taken from the `train` section of `params.yaml`, picks the best
epoch on the validation split (never the test split), and writes:
- `models/distilbert/`: the model (safetensors) and tokenizer saved with `save_pretrained`,
  `tokenize_config.json` (how the ids were cut, so prediction cuts new reviews the same
  way) and a model card `README.md` with the validation metrics and the params;
- `metrics/train_distilbert.json`: the validation metrics of the saved model;
- `dvclive/train_distilbert/`: the training curves (loss, learning rate, validation
  metrics), one row per logged step, drawn by `dvc plots show`.

Checkpoints go to `train.output_dir` (outside the stage's outs, so `dvc repro` keeps them):
a run that was killed resumes from the last complete checkpoint, a fingerprint of the
params and data beside them makes a run with other params start over, and a finished run
removes them. With `train.num_processes > 1` (or under `torchrun` / `accelerate launch`)
the processes train together and only the main one writes anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from stages.common import (
    ID2LABEL,
    LABEL2ID,
    METRICS_DIR,
    MODELS_DIR,
    TOKENIZED_HF_DIR,
    ModelParams,
    Params,
    StageError,
    atomic_path,
    is_local_path,
    load_from_hub,
    load_params,
    load_section,
    load_shared,
    run_stage,
    seed_everything,
    write_json,
)
from stages.tokenize import TOKENIZE_CONFIG_FILE, load_tokenizer

log = logging.getLogger("imdb_sentiment.train_distilbert")

MODEL_DIR = MODELS_DIR / "distilbert"
METRICS_FILE = METRICS_DIR / "train_distilbert.json"
LIVE_DIR = Path("dvclive/train_distilbert")
FINGERPRINT_FILE = "fingerprint.json"
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
# What a checkpoint must hold to be resumed from; the Trainer writes trainer_state.json last.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json")
# Logged values that change from run to run (wall time, throughput): kept out of the
# DVCLive files so that two identical runs write identical outputs.
TIMING_KEY = re.compile(r"(runtime|per_second)$")
METRIC_NAMES = ("accuracy", "precision", "recall", "f1")

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
    # Bit-exact GPU runs (slower: deterministic kernels, blocking CUDA launches). CPU runs
    # use deterministic algorithms always.
    full_determinism: bool = False
    # Batches of reviews of similar length (less padding); eval batches sorted by length.
    group_by_length: bool = True
    eval_group_by_length: bool = True
    # Reduce logits to the predicted label on the device, before they are gathered.
    argmax_logits: bool = True
    # Processes that train together (one per GPU); > 1 relaunches the stage under torchrun.
    num_processes: int = Field(1, ge=1)
    push_to_hub: bool = False
    hub_model_id: str | None = Field(None, min_length=1)


# --------------------------------------------------------------------------- checks


def check_hub_settings(config: TrainParams) -> None:
    """Stop before anything is loaded when `push_to_hub` cannot succeed. The token is only
    looked up (env HF_TOKEN or `hf auth login`), never printed or stored."""
    if not config.push_to_hub:
        return
    if not config.hub_model_id:
        raise StageError(
            "params.yaml: train.push_to_hub is true but train.hub_model_id is not set "
            "(e.g. your-name/imdb-distilbert)"
        )
    from huggingface_hub import get_token

    if not get_token():
        raise StageError(
            "params.yaml: train.push_to_hub is true but no Hugging Face token was found: "
            "set HF_TOKEN in the environment (or run `hf auth login`)"
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
        raise StageError(f"params.yaml: train.mixed_precision = {setting!r} needs a CUDA GPU")
    return setting


# --------------------------------------------------------------------------- arguments


def build_training_arguments(config: TrainParams, seed: int, **overrides: Any) -> Any:
    """TrainingArguments from the `train` params; `overrides` are for benchmarks only."""
    import torch
    from transformers import TrainingArguments

    precision = resolve_mixed_precision(config.mixed_precision)
    kwargs: dict[str, Any] = {
        "output_dir": config.output_dir,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "per_device_eval_batch_size": config.per_device_eval_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "num_train_epochs": config.num_train_epochs,
        "weight_decay": config.weight_decay,
        # transformers 5: a float in [0, 1) is a share of the total steps.
        "warmup_steps": config.warmup_ratio,
        "lr_scheduler_type": config.lr_scheduler_type,
        "max_grad_norm": config.max_grad_norm,
        "eval_strategy": config.eval_strategy,
        "save_strategy": config.save_strategy,
        "logging_strategy": "steps",
        "logging_steps": config.logging_steps,
        "save_total_limit": config.save_total_limit,
        "load_best_model_at_end": config.load_best_model_at_end,
        "metric_for_best_model": config.metric_for_best_model,
        "greater_is_better": config.metric_for_best_model != "loss",
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "full_determinism": config.full_determinism,
        # Without a GPU, say so: accelerate then sees the processes of `torchrun` as one
        # multi-CPU run (gloo backend) instead of as separate single runs.
        "use_cpu": not torch.cuda.is_available(),
        "seed": seed,
        "data_seed": seed,
        "push_to_hub": config.push_to_hub,
        "hub_model_id": config.hub_model_id,
        # The stage pushes models/distilbert itself, once, at the end (see push_model).
        "hub_strategy": "end",
        # DVCLive is attached as a callback (see LiveCallback), so nothing is logged twice.
        "report_to": "none",
        # The collator drops the `length` column that the samplers read.
        "remove_unused_columns": False,
        "disable_tqdm": False,
    }
    if config.eval_steps is not None:
        kwargs["eval_steps"] = config.eval_steps
    if config.save_steps is not None:
        kwargs["save_steps"] = config.save_steps
    kwargs.update(overrides)
    try:
        return TrainingArguments(**kwargs)
    except ValueError as exc:
        raise StageError(f"params.yaml: train: {' '.join(str(exc).split())}") from exc


# --------------------------------------------------------------------------- batching


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
    """A Trainer whose samplers follow `train.group_by_length` / `eval_group_by_length`
    (built lazily so importing this module does not import transformers)."""
    from transformers import Trainer

    class ProjectTrainer(Trainer):
        def __init__(self, *args: Any, config: TrainParams, **kwargs: Any) -> None:
            self.project_config = config
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not self.project_config.group_by_length or "length" not in dataset.column_names:
                return super()._get_train_sampler(train_dataset)
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return EpochSeededLengthGroupedSampler(
                list(dataset["length"]), batch * max(1, self.args.world_size), self.args.seed
            )

        def _get_eval_sampler(self, eval_dataset: Any) -> Any:
            if self.project_config.eval_group_by_length and "length" in eval_dataset.column_names:
                return LengthSortedSampler(list(eval_dataset["length"]))
            import torch

            return torch.utils.data.SequentialSampler(eval_dataset)

    return ProjectTrainer


def build_trainer(
    config: TrainParams,
    args: Any,
    model: Any,
    tokenizer: Any,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """The project's Trainer: dynamic padding, length-grouped batches, argmax before gather."""
    pad_multiple = 8 if (args.bf16 or args.fp16) else None  # tensor cores like multiples of 8
    return make_trainer_class()(
        model=model,
        args=args,
        config=config,
        data_collator=ModelInputCollator(tokenizer, pad_to_multiple_of=pad_multiple),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=argmax_logits if config.argmax_logits else None,
        callbacks=callbacks,
    )


# --------------------------------------------------------------------------- logging


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
    """A TrainerCallback that writes each Trainer log once to DVCLive, at x = global step.

    Built here rather than with report_to="dvclive" so that DVCLive neither creates DVC
    experiments nor writes a dvc.yaml of its own (dvc.yaml declares these plots), timing
    values stay out, and a resumed run replays the history kept in its checkpoint, which
    gives the same files as a run that was never stopped.
    """
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


# --------------------------------------------------------------------------- checkpoints


def _hash_files(digest: Any, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)


def run_fingerprint(
    config: TrainParams, seed: int, model_name: str, data_dir: Path, world_size: int
) -> str:
    """A hash of everything a checkpoint depends on: params, process count, data, model."""
    digest = hashlib.sha256()
    settings = config.model_dump(exclude={"output_dir", "push_to_hub", "hub_model_id"})
    digest.update(
        json.dumps(
            {"seed": seed, "model": model_name, "world_size": world_size, "train": settings},
            sort_keys=True,
        ).encode()
    )
    _hash_files(digest, data_dir)
    if is_local_path(model_name) and Path(model_name).expanduser().is_dir():
        _hash_files(digest, Path(model_name).expanduser())
    return digest.hexdigest()


def _is_complete(checkpoint: Path) -> bool:
    """Whether the Trainer wrote `checkpoint` to the end: every file there, and the last one
    it writes, trainer_state.json, whole (a kill can cut that write short too)."""
    if not all((checkpoint / name).exists() for name in CHECKPOINT_FILES):
        return False
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoints in `output_dir` that were written to the end, oldest first."""
    found = []
    for path in output_dir.glob("checkpoint-*"):
        match = CHECKPOINT_NAME.match(path.name)
        if match and _is_complete(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def prepare_checkpoints(output_dir: Path, fingerprint: str, is_main: bool) -> Path | None:
    """The checkpoint to resume from, if one was left by a run with the same fingerprint.

    Checkpoints of another run (other params or data) are removed, never resumed. Only the
    main process changes the folder; every process reaches the same answer.
    """
    marker = output_dir / FINGERPRINT_FILE
    stored = None
    if marker.exists():
        try:
            stored = json.loads(marker.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            stored = None
    resume = None
    if stored == fingerprint:
        checkpoints = complete_checkpoints(output_dir)
        resume = checkpoints[-1] if checkpoints else None
    elif output_dir.exists() and is_main:
        log.info("%s holds checkpoints of other params or data: starting over", output_dir)
        shutil.rmtree(output_dir)
    if is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        if stored != fingerprint:
            write_json(marker, {"fingerprint": fingerprint})
    return resume


# --------------------------------------------------------------------------- outputs


def model_card(
    model_name: str, metrics: Mapping[str, Any], config: TrainParams, seed: int, tokenize: dict
) -> str:
    """The model card: what the model is, its validation metrics and the params it came from.
    No dates or timings, so that two identical runs write the same file."""
    rows = "\n".join(
        f"| {name} | {metrics['validation'][name]:.4f} |"
        for name in (*METRIC_NAMES, "loss")
        if name in metrics["validation"]
    )
    params = json.dumps(
        {"seed": seed, "train": config.model_dump(), "tokenize": tokenize}, indent=2
    )
    kept = (
        f"the one kept for its `{config.metric_for_best_model}`"
        if config.load_best_model_at_end
        else "the last one"
    )
    validation = (
        f"Measured on the validation split (held out of the training reviews) after epoch "
        f"{metrics['best_epoch']} (step {metrics['best_step']}), {kept}; the test split is "
        f"scored by the `evaluate` stage.\n\n| metric | value |\n| --- | --- |\n{rows}"
        if rows
        else "None: the model was not evaluated during training (`train.eval_strategy: no`)."
    )
    return f"""---
base_model: {model_name}
datasets:
- stanfordnlp/imdb
language: en
library_name: transformers
pipeline_tag: text-classification
tags:
- sentiment-analysis
- imdb-sentiment
---

# IMDb sentiment classifier

`{model_name}` fine-tuned to classify IMDb movie reviews as `NEGATIVE` (0) or
`POSITIVE` (1), by the `train_distilbert` stage of the imdb-sentiment DVC pipeline.

## Validation metrics

{validation}

## How to use

Reviews must be cut as in training: `tokenize_config.json` beside the model gives
`max_length`, `truncation` and `head_tokens`.

```python
from transformers import pipeline

classify = pipeline("text-classification", model="models/distilbert")
classify("A moving, beautifully acted film.")
```

## Training params

```json
{params}
```
"""


def last_train_loss(state: Any) -> float | None:
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    return losses[-1] if losses else None


def best_epoch_metrics(state: Any, load_best: bool) -> dict[str, Any]:
    """The validation metrics of the model that is saved: the best evaluation when
    `load_best_model_at_end`, else the last one."""
    evals = [entry for entry in state.log_history if "eval_loss" in entry]
    if not evals:
        return {}
    chosen = evals[-1]
    if load_best and state.best_global_step is not None:
        chosen = next((entry for entry in evals if entry["step"] == state.best_global_step), chosen)
    return chosen


# --------------------------------------------------------------------------- training


def push_model(model_dir: Path, repo_id: str) -> None:
    """Upload the saved model folder (weights, tokenizer, tokenize config, our model card)
    to the Hub; huggingface_hub reads the token from the environment itself."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(model_dir),
            commit_message="imdb-sentiment: train_distilbert",
        )
    except Exception as exc:  # network and permission errors come in many types
        detail = " ".join(str(exc).split())[:200]
        raise StageError(
            f"train.push_to_hub: could not push {model_dir} to {repo_id!r} "
            f"({type(exc).__name__}: {detail}); the model is saved locally"
        ) from exc
    log.info("pushed %s to the Hugging Face Hub as %s", model_dir, repo_id)


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


def load_datasets(data_dir: Path) -> Any:
    import datasets

    if not data_dir.exists():
        raise StageError(f"{data_dir} is missing: run `dvc repro tokenize` first")
    dataset = datasets.load_from_disk(str(data_dir))
    missing = {"train", "validation"} - set(dataset)
    if missing:
        raise StageError(f"{data_dir}: no {sorted(missing)} split")
    return dataset


def load_model(model_name: str) -> Any:
    from transformers import AutoModelForSequenceClassification

    def load() -> Any:
        return AutoModelForSequenceClassification.from_pretrained(
            model_name, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID
        )

    if is_local_path(model_name):
        try:
            return load()
        except OSError as exc:
            raise StageError(f"model.name={model_name!r}: no model there ({exc})") from exc
    return load_from_hub(
        load,
        param="model.name",
        value=model_name,
        hint="a local directory saved with save_pretrained",
    )


def fine_tune(
    config: TrainParams,
    seed: int,
    model_name: str,
    data_dir: Path = TOKENIZED_HF_DIR,
    tokenize_config_file: Path = TOKENIZE_CONFIG_FILE,
    model_dir: Path = MODEL_DIR,
    metrics_file: Path = METRICS_FILE,
    live_dir: Path = LIVE_DIR,
    **argument_overrides: Any,
) -> dict[str, Any]:
    """Fine-tune, save the model, its card and the metrics; return the metrics plus the
    training throughput (`train_runtime`, `train_samples_per_second`, not written)."""
    import torch

    seed_everything(seed)
    # First, so that inconsistent params (e.g. save and eval strategies that differ with
    # load_best_model_at_end) stop the stage before any data or model is loaded.
    args = build_training_arguments(config, seed, **argument_overrides)
    is_main = args.process_index == 0
    if not tokenize_config_file.exists():
        raise StageError(f"{tokenize_config_file} is missing: run `dvc repro tokenize` first")
    tokenize = json.loads(tokenize_config_file.read_text(encoding="utf-8"))
    if tokenize.get("model_name") != model_name:
        raise StageError(
            f"params.yaml: model.name = {model_name!r} but data/tokenized was made with the "
            f"tokenizer of {tokenize.get('model_name')!r}: run `dvc repro tokenize` first"
        )

    if not torch.cuda.is_available():
        # On CPU, deterministic kernels cost nothing: two runs give the same bytes.
        torch.use_deterministic_algorithms(True, warn_only=True)
    log.info(
        "process %d of %d on %s, mixed precision: %s",
        args.process_index + 1,
        args.world_size,
        args.device,
        "bf16" if args.bf16 else "fp16" if args.fp16 else "no (fp32)",
    )

    output_dir = Path(args.output_dir)
    fingerprint = run_fingerprint(config, seed, model_name, data_dir, args.world_size)
    resume = prepare_checkpoints(output_dir, fingerprint, is_main)
    if resume is not None:
        log.info("resuming from %s", resume)

    splits = load_datasets(data_dir)
    columns = [c for c in ("input_ids", "label", "length") if c in splits["train"].column_names]
    train_dataset = splits["train"].select_columns(columns)
    eval_dataset = splits["validation"].select_columns(columns)
    tokenizer = load_tokenizer(model_name)
    # The classifier head is initialised from the seed; the Trainer seeds again before it
    # shuffles, so the head and the order depend only on `seed`.
    seed_everything(seed)
    model = load_model(model_name)

    trainer = build_trainer(
        config,
        args,
        model,
        tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        callbacks=[live_callback(live_dir)],
    )
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    chosen = best_epoch_metrics(trainer.state, args.load_best_model_at_end)
    metrics: dict[str, Any] = {
        "validation": {
            name: chosen[f"eval_{name}"]
            for name in (*METRIC_NAMES, "loss")
            if f"eval_{name}" in chosen
        },
        "best_epoch": chosen.get("epoch"),
        "best_step": chosen.get("step"),
        "epochs": config.num_train_epochs,
        "global_step": trainer.state.global_step,
        # The last logged training loss: the Trainer's run mean (`training_loss`) covers
        # only the steps since a resume, so it would differ after a kill.
        "train_loss": last_train_loss(trainer.state),
    }
    if is_main:
        with atomic_path(model_dir) as tmp:
            trainer.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            shutil.copy2(tokenize_config_file, tmp / tokenize_config_file.name)
            (tmp / "README.md").write_text(
                model_card(model_name, metrics, config, seed, tokenize), encoding="utf-8"
            )
        write_json(metrics_file, metrics)
        log.info("validation: %s; wrote %s and %s", metrics["validation"], model_dir, metrics_file)
        if config.push_to_hub:
            push_model(model_dir, config.hub_model_id)
        # The run is complete: its checkpoints are no longer needed to resume.
        shutil.rmtree(output_dir, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return {
        **metrics,
        "train_runtime": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "world_size": args.world_size,
        "is_main": is_main,
    }


def main() -> None:
    params = load_params()
    config = load_section(params, "train", TrainParams)
    model = load_section(params, "model", ModelParams)
    seed = load_shared(params).seed
    check_hub_settings(config)
    launched = "LOCAL_RANK" in os.environ  # under torchrun / accelerate launch already
    if config.num_processes > 1 and not launched:
        relaunch_with_torchrun(config.num_processes)
    fine_tune(config, seed, model.name)


if __name__ == "__main__":
    run_stage(main)
