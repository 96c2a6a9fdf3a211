"""train_distilbert: fine-tune a transformer (DistilBERT by default) with the Trainer API.

Reads the tokenized splits (`data/tokenized/hf/`) and `model.name`, fine-tunes with the
`TrainingArguments` built from the `train_distilbert` params, picks the best epoch on the
validation split (never the test split), and writes:
- `models/distilbert/`: model, tokenizer, `tokenize_config.json` (how the ids were cut) and
  a model card `README.md`;
- `metrics/validation/distilbert.json`: the validation metrics of the saved model, and
  `summaries/train_distilbert.json`: its epoch and step, the steps run, the last train loss;
- `dvclive/train_distilbert/`: the training curves, drawn by `dvc plots show`.
Checkpoints go to `train_distilbert.output_dir`, so a killed `dvc repro` resumes
(stages/checkpoints.py). With `num_processes > 1` (or under `torchrun`) the processes train
together and only the main one writes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from stages.atomic import atomic_outputs, json_text
from stages.checkpoints import (
    check_output_dir,
    pipeline_outs,
    prepare_checkpoints,
    remove_checkpoints,
    run_fingerprint,
)
from stages.cutting import IdCutter, check_fits_model, read_cut_config
from stages.errors import StageError, run_stage
from stages.hub import is_local_path, load_classifier, load_tokenizer
from stages.labels import ID2LABEL, LABEL2ID
from stages.live_callback import live_callback
from stages.model_card import (
    check_hub_push,
    describe_base_model,
    model_card,
    push_model,
    training_data_context,
    usage_snippet,
)
from stages.params import ModelParams, Params, load_params, load_section, load_shared
from stages.paths import (
    MODELS_DIR,
    SUMMARIES_DIR,
    TOKENIZE_CONFIG_FILE,
    TOKENIZED_HF_DIR,
    VALIDATION_METRICS_DIR,
)
from stages.progress import use_labelled_progress, without_load_report
from stages.trainer import (
    build_trainer,
    chosen_metrics,
    load_datasets,
    relaunch_with_torchrun,
    resolve_mixed_precision,
)

log = logging.getLogger("imdb_sentiment.train_distilbert")

MODEL_DIR = MODELS_DIR / "distilbert"
METRICS_FILE = VALIDATION_METRICS_DIR / "distilbert.json"
SUMMARY_FILE = SUMMARIES_DIR / "train_distilbert.json"
LIVE_DIR = Path("dvclive/train_distilbert")

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
    # Reduce logits to the predicted label on the device, before they are gathered.
    argmax_logits: bool = True
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
    "argmax_logits",
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


def fine_tune(
    config: TrainParams,
    seed: int,
    model_name: str,
    data_dir: Path = TOKENIZED_HF_DIR,
    tokenize_config_file: Path = TOKENIZE_CONFIG_FILE,
    model_dir: Path = MODEL_DIR,
    metrics_file: Path = METRICS_FILE,
    summary_file: Path = SUMMARY_FILE,
    live_dir: Path = LIVE_DIR,
    card_context: dict[str, Any] | None = None,
    **argument_overrides: Any,
) -> dict[str, Any]:
    """Fine-tune, save the model, its card, the validation metrics and the summary; return
    both plus the training throughput (`train_runtime`, `train_samples_per_second`, not
    written)."""
    import torch
    from transformers import set_seed

    set_seed(seed)
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
    settings = config.model_dump(exclude={"output_dir", "push_to_hub", "hub_model_id"})
    local_model = Path(model_name).expanduser() if is_local_path(model_name) else None
    fingerprint = run_fingerprint(
        {"seed": seed, "model": model_name, "world_size": args.world_size, "train": settings},
        data_dir,
        local_model,
    )
    resume = prepare_checkpoints(output_dir, fingerprint, is_main)
    if resume is not None:
        log.info("resuming from %s", resume)

    splits = load_datasets(data_dir)
    columns = [c for c in ("input_ids", "label", "length") if c in splits["train"].column_names]
    tokenizer = load_tokenizer(model_name)
    # The classifier head is initialised from the seed; the Trainer seeds again before it
    # shuffles, so the head and the order depend only on `seed`.
    set_seed(seed)
    with without_load_report():
        model = load_classifier(model_name, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
    log.info("a new classification head starts from random weights: fine-tuning trains it")
    check_fits_model(read_cut_config(tokenize_config_file.parent), model.config, "model.name")
    trainer = build_trainer(
        args,
        model,
        tokenizer,
        group_by_length=config.group_by_length,
        eval_group_by_length=config.eval_group_by_length,
        argmax_before_gather=config.argmax_logits,
        train_dataset=splits["train"].select_columns(columns),
        eval_dataset=splits["validation"].select_columns(columns),
        callbacks=[live_callback(live_dir)],
    )
    use_labelled_progress(trainer, "train_distilbert")
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    chosen = chosen_metrics(trainer.state, args.load_best_model_at_end)
    metrics: dict[str, Any] = {**chosen, "epochs": config.num_train_epochs}
    if is_main:
        cutter = IdCutter(tokenizer, read_cut_config(tokenize_config_file.parent))
        context = card_context or {"data": ("the reviews in data/tokenized", []), "prepare": {}}
        card = model_card(
            base_model=describe_base_model(model_name, model.config),
            data=context["data"],
            prepare=context["prepare"],
            metrics=metrics,
            training={"seed": seed, **settings},
            usage=usage_snippet(tokenize, cutter.prefix, cutter.suffix),
        )
        summary = {key: value for key, value in metrics.items() if key != "validation"}
        # No out is replaced until all of them are written.
        outs = (model_dir, metrics_file, summary_file)
        with atomic_outputs(*outs) as (tmp_model, tmp_metrics, tmp_summary):
            trainer.model.save_pretrained(tmp_model)
            tokenizer.save_pretrained(tmp_model)
            shutil.copy2(tokenize_config_file, tmp_model / tokenize_config_file.name)
            (tmp_model / "README.md").write_text(card, encoding="utf-8")
            tmp_metrics.write_text(json_text(metrics["validation"]), encoding="utf-8")
            tmp_summary.write_text(json_text(summary), encoding="utf-8")
        log.info("validation: %s; wrote %s, %s and %s", metrics["validation"], *outs)
        if config.push_to_hub:
            push_model(model_dir, config.hub_model_id)
        # The run is complete: its checkpoints are no longer needed to resume.
        remove_checkpoints(output_dir)
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
    config = load_section(params, "train_distilbert", TrainParams)
    model = load_section(params, "model", ModelParams)
    seed = load_shared(params).seed
    card_context = training_data_context(params)
    check_output_dir(Path(config.output_dir), pipeline_outs())
    check_hub_push(config.push_to_hub, config.hub_model_id)
    launched = "LOCAL_RANK" in os.environ  # under torchrun / accelerate launch already
    if config.num_processes > 1 and not launched:
        relaunch_with_torchrun(config.num_processes)
    fine_tune(config, seed, model.name, card_context=card_context)


if __name__ == "__main__":
    run_stage(main)
