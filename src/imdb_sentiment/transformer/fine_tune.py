"""Fine-tuning a transformer with the Trainer, as the `train_distilbert` stage runs it.

Loads the tokenized splits and `model.name`, trains, keeps the best epoch on validation
(never the test split), and writes the model (with its tokenizer, `tokenize_config.json`
and card), the validation metrics, a summary and the DVCLive curves. Checkpoints go to
`train_distilbert.output_dir`, so a killed run resumes (`transformer.checkpoints`); in
several processes only the main one writes.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from imdb_sentiment.core.atomic import atomic_outputs, json_text
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.hub import is_local_path
from imdb_sentiment.core.labels import ID2LABEL, LABEL2ID
from imdb_sentiment.core.paths import (
    MODELS_DIR,
    SUMMARIES_DIR,
    TOKENIZE_CONFIG_FILE,
    TOKENIZED_HF_DIR,
    VALIDATION_METRICS_DIR,
)
from imdb_sentiment.evaluation.metrics import model_size_mb
from imdb_sentiment.text.cutting import IdCutter, check_fits_model, read_cut_config
from imdb_sentiment.transformer.arguments import TrainParams, build_training_arguments
from imdb_sentiment.transformer.checkpoints import (
    prepare_checkpoints,
    remove_checkpoints,
    run_fingerprint,
    run_limits,
    stamp_callback,
)
from imdb_sentiment.transformer.curves import live_callback
from imdb_sentiment.transformer.loading import (
    check_fits_embeddings,
    load_classifier,
    load_tokenizer,
)
from imdb_sentiment.transformer.model_card import (
    base_model_name,
    describe_base_model,
    model_card,
    push_model,
    usage_snippet,
)
from imdb_sentiment.transformer.progress import (
    FULL_DATA_ADVICE,
    use_labelled_progress,
    without_load_report,
)
from imdb_sentiment.transformer.trainer import METRIC_NAMES, build_trainer

log = logging.getLogger("imdb_sentiment.train_distilbert")

MODEL_DIR = MODELS_DIR / "distilbert"
METRICS_FILE = VALIDATION_METRICS_DIR / "distilbert.json"
SUMMARY_FILE = SUMMARIES_DIR / "train_distilbert.json"
LIVE_DIR = Path("dvclive/train_distilbert")


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
    cpu_advice: str = FULL_DATA_ADVICE,
    **argument_overrides: Any,
) -> dict[str, Any]:
    """Fine-tune, save the model, its card, the validation metrics and the summary; return
    both plus the training throughput (`train_runtime`, `train_samples_per_second`, not
    written). `cpu_advice` ends the warning a slow CPU run gives (`progress.slow_cpu_advice`)."""
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
    splits = load_datasets(data_dir)
    limits = run_limits(
        len(splits["train"]),
        config.per_device_train_batch_size * args.world_size,
        args.num_train_epochs,
    )
    resume = prepare_checkpoints(output_dir, fingerprint, is_main, limits)
    if resume is not None:
        log.info("resuming from %s", resume)

    columns = [c for c in ("input_ids", "label", "length") if c in splits["train"].column_names]
    tokenizer = load_tokenizer(model_name)
    # The classifier head is initialised from the seed; the Trainer seeds again before it
    # shuffles, so the head and the order depend only on `seed`.
    set_seed(seed)
    with without_load_report():
        model = load_classifier(model_name, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
    log.info("a new classification head starts from random weights: fine-tuning trains it")
    check_fits_model(read_cut_config(tokenize_config_file.parent), model.config, "model.name")
    check_fits_embeddings(tokenizer, model.config, "model.name")
    trainer = build_trainer(
        args,
        model,
        tokenizer,
        group_by_length=config.group_by_length,
        eval_group_by_length=config.eval_group_by_length,
        reduce_before_gather=config.reduce_logits,
        train_dataset=splits["train"].select_columns(columns),
        eval_dataset=splits["validation"].select_columns(columns),
        callbacks=[live_callback(live_dir), stamp_callback(fingerprint)],
    )
    use_labelled_progress(trainer, "train_distilbert", cpu_advice)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    chosen = chosen_metrics(trainer.state, args.load_best_model_at_end)
    metrics: dict[str, Any] = {**chosen, "epochs": config.num_train_epochs}
    if is_main:
        cutter = IdCutter(tokenizer, read_cut_config(tokenize_config_file.parent))
        context = card_context or {"data": ("the reviews in data/tokenized", []), "prepare": {}}
        card = model_card(
            base_model=describe_base_model(model_name, model.config),
            base_name=base_model_name(model_name),
            data=context["data"],
            prepare=context["prepare"],
            metrics=metrics,
            training={"seed": seed, **settings},
            usage=usage_snippet(tokenize, cutter.prefix, cutter.suffix),
        )
        # The base model by name, beside the model in `make results` and `make runs`.
        summary = {
            "base_model": base_model_name(model_name),
            **{key: value for key, value in metrics.items() if key != "validation"},
        }
        # No out is replaced until all of them are written.
        outs = (model_dir, metrics_file, summary_file)
        with atomic_outputs(*outs) as (tmp_model, tmp_metrics, tmp_summary):
            trainer.model.save_pretrained(tmp_model)
            tokenizer.save_pretrained(tmp_model)
            shutil.copy2(tokenize_config_file, tmp_model / tokenize_config_file.name)
            (tmp_model / "README.md").write_text(card, encoding="utf-8")
            # The keys of the test metrics: the model folder's size too.
            metrics["validation"]["size_mb"] = model_size_mb(tmp_model)
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
