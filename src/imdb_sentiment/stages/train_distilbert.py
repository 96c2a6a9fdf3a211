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
(transformer/checkpoints.py). With `num_processes > 1` (or under `torchrun`) the processes train
together and only the main one writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from imdb_sentiment.core.errors import run_stage
from imdb_sentiment.core.params import ModelParams, load_params, load_section, load_shared
from imdb_sentiment.transformer.arguments import TrainParams
from imdb_sentiment.transformer.checkpoints import (
    check_output_dir,
    pipeline_outs,
)
from imdb_sentiment.transformer.distributed import relaunch_with_torchrun
from imdb_sentiment.transformer.fine_tune import fine_tune
from imdb_sentiment.transformer.model_card import (
    check_hub_push,
    training_data_context,
)
from imdb_sentiment.transformer.progress import slow_cpu_advice


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
    # On a CPU, a long run's warning suggests a capped slice, unless the data is capped.
    advice = slow_cpu_advice(card_context["prepare"].get("max_train_samples"))
    fine_tune(config, seed, model.name, card_context=card_context, cpu_advice=advice)


if __name__ == "__main__":
    run_stage(main)
