"""The fine-tuned model's card (`README.md` beside the weights) and its push to the Hub.

The card tells the truth about the run: where the data came from (a hub id, or local data
with its DVC hash, never a path of one machine), the prepare settings and caps that shaped
the training reviews, the base model, the validation metrics, and a usage snippet that
cuts long reviews exactly as training did. No dates or timings, so that two identical runs
write the same file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.hub import is_local_path
from imdb_sentiment.core.params import DataParams, load_section, load_subset
from imdb_sentiment.text.cleaning import CleaningParams

log = logging.getLogger("imdb_sentiment.model_card")

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
# The prepare keys that shape the training reviews (besides the cleaning ones).
TRAINING_DATA_KEYS = (
    "drop_duplicates",
    "drop_test_overlap",
    "validation_size",
    "max_train_samples",
    "max_validation_samples",
)


def _dvc_hash(path: Path) -> str | None:
    """The md5 DVC recorded for `path` (from `path.dvc`), if it is tracked that way."""
    dvc_file = path.with_name(path.name + ".dvc")
    try:
        outs = YAML(typ="safe", pure=True).load(dvc_file.read_text("utf-8"))["outs"]
        return str(outs[0]["md5"])
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return None


def describe_data(source: str) -> tuple[str, list[str]]:
    """How the card names the training data, and the hub datasets for its metadata."""
    if not is_local_path(source):
        return f"the Hugging Face dataset `{source}`", [source]
    path = Path(source)
    md5 = _dvc_hash(path)
    shown = source if not path.is_absolute() else path.name
    tracked = f", DVC md5 `{md5}`" if md5 else ""
    return f"local data (`{shown}`{tracked})", []


def base_model_name(name: str) -> str:
    """The base model as people call it: the hub id's last part or the local folder's name
    (`distilbert-base-uncased`, `all-MiniLM-L6-v2`)."""
    return Path(name.rstrip("/")).name or name


def describe_base_model(name: str, config: Any) -> tuple[str, str | None]:
    """How the card names the base model, and its hub id for the metadata (None if local)."""
    if not is_local_path(name):
        return f"`{name}`", name
    layers = getattr(config, "n_layers", None) or getattr(config, "num_hidden_layers", None)
    size = f", {layers} layers" if layers else ""
    return (
        f"`{base_model_name(name)}`, a local `{config.model_type}` model{size},",
        None,
    )


def training_data_context(params: Mapping[str, Any]) -> dict[str, Any]:
    """What the card says of the training data: its source and the prepare settings that
    shaped it (dvc.yaml declares these keys as params of train_distilbert)."""
    data = load_section(params, "data", DataParams)
    prepare = params.get("prepare") or {}
    return {
        "data": describe_data(data.source),
        "prepare": {
            **load_subset(params, "prepare", CleaningParams).model_dump(),
            **{key: prepare[key] for key in TRAINING_DATA_KEYS if key in prepare},
        },
    }


def usage_snippet(cut: Mapping[str, Any], prefix: list[int], suffix: list[int]) -> str:
    """Python that scores a review exactly as `predict` does, with plain transformers."""
    budget = int(cut["max_length"]) - len(prefix) - len(suffix)
    mode, head = cut["truncation"], int(cut["head_tokens"])
    keep = {
        "head": "ids[:BUDGET]",
        "tail": "ids[len(ids) - BUDGET :]",
        "head_tail": "ids[:HEAD] + ids[len(ids) - (BUDGET - HEAD) :]",
    }[mode]
    return f"""```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model_id = "models/distilbert"  # this folder, or its Hub id
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForSequenceClassification.from_pretrained(model_id).eval()

# Long reviews are cut as in training: {mode}, {cut["max_length"]} tokens in all.
BUDGET, HEAD = {budget}, {head}
PREFIX, SUFFIX = {prefix}, {suffix}


def classify(review: str) -> tuple[str, float]:
    ids = tokenizer(review, add_special_tokens=False)["input_ids"]
    if len(ids) > BUDGET:
        ids = {keep}
    input_ids = torch.tensor([PREFIX + ids + SUFFIX])
    with torch.inference_mode():
        probs = model(input_ids=input_ids).logits.softmax(-1)[0]
    label = int(probs.argmax())
    return model.config.id2label[label], float(probs[label])


print(classify("A moving, beautifully acted film."))
```"""


def model_card(
    *,
    base_model: tuple[str, str | None],
    base_name: str,
    data: tuple[str, list[str]],
    prepare: Mapping[str, Any],
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    usage: str,
) -> str:
    """The card's text: huggingface_hub's `ModelCard`, whose metadata holds the validation
    metrics as `model-index` results (shown on the model's Hub page), and the body."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    (base_text, base_id), (data_text, datasets) = base_model, data
    validation = metrics.get("validation") or {}
    model_name = f"{base_name}-imdb-sentiment"
    results = [
        EvalResult(
            task_type="text-classification",
            dataset_type=datasets[0] if datasets else "imdb",
            dataset_name="IMDb Large Movie Review Dataset",
            dataset_split="validation",
            metric_type=name,
            metric_value=round(float(validation[name]), 6),
        )
        for name in METRIC_NAMES
        if name in validation
    ]
    header = ModelCardData(
        model_name=model_name if results else None,
        eval_results=results or None,
        base_model=base_id,
        datasets=datasets or None,
        language="en",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["sentiment-analysis", "imdb-sentiment"],
    ).to_yaml()
    rows = "\n".join(
        f"| {name} | {validation[name]:.4f} |" for name in METRIC_NAMES if name in validation
    )
    scores = (
        f"Measured on the validation split (held out of the training reviews) after epoch "
        f"{metrics.get('best_epoch')} (step {metrics.get('best_step')}); the test split is "
        f"scored by the `evaluate` stage.\n\n| metric | value |\n| --- | --- |\n{rows}"
        if rows
        else "None: the model was not evaluated during training."
    )
    body = f"""
# {base_name} fine-tuned for IMDb sentiment

{base_text} fine-tuned to classify movie reviews as `NEGATIVE` (0) or `POSITIVE` (1), by
the `train_distilbert` stage of the imdb-sentiment DVC pipeline, on {data_text}.

## Validation metrics

{scores}

## How to use

{usage}

## Training data

Prepared with these settings (caps of `null` keep every review):

```json
{json.dumps(dict(prepare), indent=2, sort_keys=True)}
```

## Training params

```json
{json.dumps(dict(training), indent=2, sort_keys=True)}
```
"""
    return str(ModelCard(f"---\n{header}\n---\n{body}"))


def check_hub_push(push_to_hub: bool, hub_model_id: str | None) -> None:
    """Stop before anything is loaded when a push to the Hub cannot succeed: no repo id, no
    token (env HF_TOKEN or `hf auth login`), or a Hub that does not answer to the token.
    The token is only looked up, never printed or stored."""
    if not push_to_hub:
        return
    if not hub_model_id:
        raise StageError(
            "params.yaml: train_distilbert.push_to_hub is true but "
            "train_distilbert.hub_model_id is not set (e.g. your-name/imdb-distilbert)"
        )
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if not token:
        raise StageError(
            "params.yaml: train_distilbert.push_to_hub is true but no Hugging Face token was "
            "found: set HF_TOKEN in the environment (or run `hf auth login`)"
        )
    try:
        HfApi().whoami(token=token)
    except Exception as exc:  # offline mode, network and auth errors come in many types
        raise StageError(
            f"train_distilbert.push_to_hub: the Hugging Face Hub cannot be reached with the "
            f"token found ({type(exc).__name__}: {one_line(exc, 150)}); nothing was trained"
        ) from exc


def push_model(model_dir: Path, repo_id: str) -> None:
    """Upload the saved model folder (weights, tokenizer, tokenize config, card) to the
    Hub, once, after training; huggingface_hub reads the token from the environment."""
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
        raise StageError(
            f"train_distilbert.push_to_hub: could not push {model_dir} to {repo_id!r} "
            f"({type(exc).__name__}: {one_line(exc, 200)}); the model is saved locally"
        ) from exc
    log.info("pushed %s to the Hugging Face Hub as %s", model_dir, repo_id)
