"""What each key of params.yaml must accept and must refuse, written out by hand from what
the user is told (params.yaml's comments, docs/params.md's "valid" column), never read from
the schemas under test: a schema that drifts from these promises fails the tests of
test_hostile_params.py.

Each key has a Kind:
- `valid`: a Hypothesis strategy of values of the key's own type within its documented
  range, which its stage must accept (None where what is valid depends on the machine or
  on files: a dataset or model that must exist);
- `invalid`: a strategy of values of another type (a string, list or mapping where a
  number is, a bool or float where an int is, a number where a string is), NaN and infinite
  floats, numbers outside the documented range (a negative count), null where the key has
  no null meaning: each must be refused in one `error:` line naming the key;
- `accept` and `refuse`: the edges of the same sets, tried every time (the ends of the
  range and the values just past them, `"20"`, `true`, null), since a random draw seldom
  lands on one key's edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import strategies as st

BIG = 10**6  # the top of a "valid" count or number with no documented upper bound
NON_FINITE = (math.nan, math.inf, -math.inf)
# Strings with no line breaks or control characters (YAML would fold those, and a folded
# string could become a valid one).
TEXTS = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)
# Neither a number nor a string: wrong for a number, a bool, a string or a choice.
CONTAINERS = st.lists(st.integers(-5, 5) | TEXTS, max_size=3) | st.dictionaries(
    TEXTS, st.integers(), min_size=1, max_size=2
)


@dataclass(frozen=True)
class Kind:
    valid: st.SearchStrategy | None
    invalid: st.SearchStrategy
    accept: tuple = ()
    refuse: tuple = ()


def _null(null: bool) -> tuple[st.SearchStrategy, tuple, tuple]:
    """(the strategy of null where it is refused, the accepted and the refused nulls)."""
    return (st.nothing(), (None,), ()) if null else (st.none(), (), (None,))


def integer(lo: int, hi: int | None = None, *, null: bool = False) -> Kind:
    """An int in [lo, hi]: a bool, a float (even 20.0) or a string is refused."""
    refused_null, accepted, refused = _null(null)
    top = hi if hi is not None else lo + BIG
    return Kind(
        valid=st.integers(lo, top) | (st.none() if null else st.nothing()),
        invalid=st.booleans()
        | st.floats()
        | TEXTS
        | CONTAINERS
        | st.integers(max_value=lo - 1)
        | (st.integers(min_value=hi + 1) if hi is not None else st.nothing())
        | refused_null,
        accept=(lo, top, *accepted),
        refuse=(lo - 1, *([hi + 1] if hi is not None else []), float(lo), str(lo), True, [lo])
        + refused,
    )


def number(
    lo: float,
    hi: float | None = None,
    *,
    lo_open: bool = True,
    hi_open: bool = False,
    null: bool = False,
) -> Kind:
    """A finite float (or an int, as `dvc exp run -S key=2` writes one) in the range."""
    refused_null, accepted, refused = _null(null)
    top = hi if hi is not None else float(BIG)
    top_open = hi is not None and hi_open
    first = math.floor(lo) + 1 if lo_open else math.ceil(lo)
    last = math.ceil(top) - 1 if top_open else math.floor(top)
    step = 1e-9
    return Kind(
        valid=st.floats(lo, top, exclude_min=lo_open, exclude_max=top_open)
        | (st.integers(first, last) if first <= last else st.nothing())
        | (st.none() if null else st.nothing()),
        invalid=st.booleans()
        | st.sampled_from(NON_FINITE)
        | TEXTS
        | CONTAINERS
        | st.floats(max_value=lo, exclude_max=not lo_open)
        | (st.floats(min_value=hi, exclude_min=not hi_open) if hi is not None else st.nothing())
        | refused_null,
        accept=(lo + step if lo_open else lo, top - step if top_open else top, *accepted),
        refuse=(
            lo if lo_open else lo - step,
            *([hi if hi_open else hi + step] if hi is not None else []),
            math.nan,
            math.inf,
            str(top),
            True,
            [top],
        )
        + refused,
    )


# 0 and 1 are no bools; nor are the strings "yes", "true" or "on" (YAML 1.2 reads an
# unquoted `yes` as a string too).
BOOLEAN = Kind(
    valid=st.booleans(),
    invalid=st.integers() | st.floats() | TEXTS | CONTAINERS | st.none(),
    accept=(True, False),
    refuse=(0, 1, "true", "yes", None),
)


def choice(*options: str | int, null: bool = False, valid: tuple | None = None) -> Kind:
    """One of `options` (`valid` narrows those that must pass here: the others depend on
    the machine or on other keys). A bool or a float is never an int option."""
    refused_null, accepted, refused = _null(null)
    if all(isinstance(option, str) for option in options):
        others = TEXTS.filter(lambda value: value not in options) | st.integers() | st.floats()
        edges = ("", str(options[0]).upper(), 1)
    else:
        others = st.integers().filter(lambda value: value not in options) | st.floats() | TEXTS
        edges = (max(options) + 1, min(options) - 1, float(options[0]), str(options[0]))
    return Kind(
        valid=st.sampled_from(valid or options) | (st.none() if null else st.nothing()),
        invalid=others | st.booleans() | CONTAINERS | refused_null,
        accept=(*(valid or options), *accepted),
        refuse=(*edges, True, [options[0]]) + refused,
    )


def text(valid: st.SearchStrategy | None, *, null: bool = False, accept: tuple = ()) -> Kind:
    """A non-empty string."""
    refused_null, accepted, refused = _null(null)
    return Kind(
        valid=valid | st.none() if valid is not None and null else valid,
        invalid=st.just("")
        | st.integers()
        | st.floats()
        | st.booleans()
        | CONTAINERS
        | refused_null,
        accept=(*accept, *accepted),
        refuse=("", 1, True, ["x"]) + refused,
    )


def count(lo: int = 1, *, null: bool = False) -> Kind:
    return integer(lo, null=null)


def positive(*, null: bool = False) -> Kind:
    return number(0, null=null)


def only(value: object, kind: Kind) -> Kind:
    """`kind`'s refusals, and `value` the one value that must pass here."""
    return Kind(st.just(value), kind.invalid, (value,), kind.refuse)


SHARE = number(0, 1)  # 0 < x <= 1
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
N_JOBS = Kind(
    valid=st.just(-1) | st.integers(1, 64),
    invalid=integer(-1).invalid | st.just(0),
    accept=(-1, 1, 64),
    refuse=(0, -2, -1.0, "-1", True, None),
)
CHAR_NGRAMS = Kind(
    # Pairs [min, max] of 1 to 10, or null.
    valid=st.none() | st.lists(st.integers(1, 10), min_size=2, max_size=2).map(sorted),
    invalid=st.lists(st.integers(1, 10), min_size=2, max_size=2, unique=True).map(
        lambda pair: sorted(pair, reverse=True)
    )
    | st.lists(st.integers(1, 10), min_size=3, max_size=4)
    | st.lists(st.integers(1, 10), max_size=1)
    | st.tuples(st.integers(max_value=0), st.integers(1, 10)).map(list)
    | st.tuples(st.integers(1, 10), st.integers(min_value=11)).map(list)
    | st.lists(st.floats() | st.booleans() | TEXTS, min_size=2, max_size=2)
    | TEXTS
    | st.integers()
    | st.dictionaries(TEXTS, st.integers(), min_size=1, max_size=2),
    accept=(None, [1, 1], [2, 5], [10, 10]),
    refuse=([4, 2], [0, 3], [3, 11], [2], [2, 3, 4], [], [2.0, 3.0], [True, 2], "2-4", 3),
)
INCREASING = st.lists(st.integers(1, 100_000), min_size=1, max_size=6, unique=True).map(sorted)
LENGTH_BUCKETS = Kind(
    # Positive, strictly increasing token counts.
    valid=INCREASING,
    invalid=st.just([])
    | INCREASING.filter(lambda edges: len(edges) > 1).map(lambda edges: edges[::-1])
    | INCREASING.map(lambda edges: [edges[0], edges[0]])
    | st.integers(max_value=0).map(lambda edge: [edge, 128])
    | st.lists(st.floats() | st.booleans() | TEXTS, min_size=1, max_size=3)
    | TEXTS
    | st.integers()
    | st.none(),
    accept=([1], [128, 256, 512, 1024], [100_000]),
    refuse=([], [256, 128], [128, 128], [0, 128], [-1], [128.0], [True], "128", 128, None),
)
MAX_FEATURES = Kind(
    # sqrt, log2, a count (>= 1) or a share (0 < x <= 1).
    valid=st.sampled_from(["sqrt", "log2"]) | st.integers(1, BIG) | SHARE.valid,
    invalid=st.booleans()
    | TEXTS.filter(lambda value: value not in ("sqrt", "log2"))
    | st.integers(max_value=0)
    | st.floats(max_value=0)
    | st.floats(min_value=1, exclude_min=True)
    | st.sampled_from(NON_FINITE)
    | CONTAINERS
    | st.none(),
    accept=("sqrt", "log2", 1, BIG, 1e-9, 1.0),
    refuse=("auto", "", 0, -1, 0.0, 1.5, math.nan, math.inf, True, None, ["sqrt"]),
)
DEVICE = Kind(
    # cuda and cuda:N are valid where there is such a GPU: not asserted here.
    valid=st.sampled_from(["auto", "cpu"]),
    invalid=st.sampled_from(["", "gpu", "meta", "tpu", "cuda:x", "auto cpu"])
    | st.integers()
    | st.floats()
    | st.booleans()
    | CONTAINERS
    | st.none(),
    accept=("auto", "cpu"),
    refuse=("", "gpu", "meta", "cuda:x", 0, None),
)
# Keys whose value must name a folder or id that exists (a dataset, a model): valid only
# where it does, so only their refusals are stated.
WORLD = None

KINDS: dict[str, Kind] = {
    "seed": integer(0, 2**32 - 1),
    "data.source": text(WORLD),
    "model.name": text(WORLD),
    "prepare.validation_size": number(0, 1, hi_open=True),
    "prepare.clean_html": BOOLEAN,
    "prepare.normalize_whitespace": BOOLEAN,
    "prepare.drop_duplicates": BOOLEAN,
    "prepare.drop_test_overlap": BOOLEAN,
    "prepare.max_train_samples": count(2, null=True),
    "prepare.max_validation_samples": count(2, null=True),
    "prepare.max_test_samples": count(2, null=True),
    "tokenize.max_length": integer(8, 8192),
    "tokenize.truncation": choice("head", "tail", "head_tail"),
    # Room for the two special tokens in the default max_length of 512; more than
    # max_length is refused whatever max_length is.
    "tokenize.head_tokens": Kind(
        valid=st.none() | st.integers(0, 510),
        invalid=integer(0, null=True).invalid | st.integers(min_value=513),
        accept=(None, 0, 510),
        refuse=(-1, 513, 128.0, "128", True, [128]),
    ),
    "tokenize.batch_size": count(),
    "tokenize.num_proc": integer(1, 256, null=True),
    **{
        f"{section}.{key}": kind
        for section in ("train_rf", "train_linear")
        for key, kind in {
            "column": choice("text", "tokens"),
            "ngram_max": integer(1, 5),
            "min_df": count(),
            "max_df": SHARE,
            "max_vocabulary": count(null=True),
            "nb_alpha": positive(),
            "n_jobs": N_JOBS,
            "verbose": integer(0, 3),
        }.items()
    },
    "train_rf.select_k": count(null=True),
    "train_rf.nb_evidence": BOOLEAN,
    "train_rf.n_estimators": integer(1, 10_000),
    "train_rf.max_depth": count(null=True),
    "train_rf.max_features": MAX_FEATURES,
    "train_rf.min_samples_leaf": count(),
    "train_rf.max_samples": number(0, 1, null=True),
    "train_rf.class_weight": choice("balanced", "balanced_subsample", null=True),
    "train_linear.char_ngrams": CHAR_NGRAMS,
    "train_linear.C": positive(),
    "train_linear.max_iter": count(),
    # A folder of its own under the repository (others overlap what the project keeps).
    "train_distilbert.output_dir": Kind(
        valid=st.from_regex(r"checkpoints/[a-z0-9]{1,8}", fullmatch=True),
        invalid=text(None).invalid | st.sampled_from([".", "..", "/", ".git"]),
        accept=("checkpoints/distilbert", "checkpoints/run2"),
        refuse=("", ".", "..", "/", ".git", 1, None),
    ),
    "train_distilbert.learning_rate": number(0, 1),
    "train_distilbert.per_device_train_batch_size": count(),
    "train_distilbert.per_device_eval_batch_size": count(),
    "train_distilbert.gradient_accumulation_steps": count(),
    "train_distilbert.num_train_epochs": positive(),
    "train_distilbert.weight_decay": number(0, lo_open=False),
    "train_distilbert.warmup_ratio": number(0, 1, lo_open=False, hi_open=True),
    "train_distilbert.lr_scheduler_type": choice(
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
    ),
    "train_distilbert.max_grad_norm": positive(),
    # With load_best_model_at_end (the default) both strategies must match.
    "train_distilbert.eval_strategy": choice("no", "steps", "epoch", valid=("epoch",)),
    "train_distilbert.save_strategy": choice("no", "steps", "epoch", valid=("epoch",)),
    "train_distilbert.eval_steps": count(null=True),
    "train_distilbert.save_steps": count(null=True),
    "train_distilbert.logging_steps": count(),
    "train_distilbert.save_total_limit": count(null=True),
    "train_distilbert.load_best_model_at_end": BOOLEAN,
    "train_distilbert.metric_for_best_model": choice("accuracy", "f1", "loss"),
    # bf16 and fp16 depend on the device.
    "train_distilbert.mixed_precision": choice("auto", "bf16", "fp16", "no", valid=("auto", "no")),
    "train_distilbert.full_determinism": BOOLEAN,
    "train_distilbert.group_by_length": BOOLEAN,
    "train_distilbert.eval_group_by_length": BOOLEAN,
    "train_distilbert.reduce_logits": BOOLEAN,
    # More than one relaunches the stage under torchrun: not from a unit test.
    "train_distilbert.num_processes": only(1, count()),
    # true needs hub_model_id and a token.
    "train_distilbert.push_to_hub": only(False, BOOLEAN),
    "train_distilbert.hub_model_id": text(
        st.builds("{}/{}".format, NAME, NAME), null=True, accept=("me/imdb-distilbert",)
    ),
    "export_onnx.opset": integer(14, 20),
    "export_onnx.opt_level": choice(0, 1),
    "export_onnx.per_channel": BOOLEAN,
    "export_onnx.reduce_range": BOOLEAN,
    "export_onnx.tolerance": positive(),
    "evaluate.batch_size": count(),
    "evaluate.bf16": BOOLEAN,
    "evaluate.device": DEVICE,
    "evaluate.curve_points": integer(10, 10_000),
    "evaluate.length_buckets": LENGTH_BUCKETS,
    "evaluate.n_errors": integer(0, 1000),
    "evaluate.error_chars": count(20),
    "predict.max_review_chars": count(),
    "score.connect_timeout_s": number(0, 3600),
}
