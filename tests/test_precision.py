"""bf16 on the CPU: used exactly when the CPU does bf16 in hardware (AMX or AVX512-BF16),
by evaluate's inference and by predict's torch backend."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from imdb_sentiment.inference import precision
from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.inference.torch_backend import predict_logits
from imdb_sentiment.text.cutting import CutParams

CPU = torch.device("cpu")


@pytest.fixture
def detection(monkeypatch: pytest.MonkeyPatch):
    """Set what the CPU check answers: `detection(True)` for a CPU with bf16."""

    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)

    def answer(supported: bool) -> None:
        monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: supported)

    return answer


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "flags", "expected"),
    [
        (True, False, "fpu avx2", True),
        (False, True, "fpu avx2", True),
        (False, False, "fpu avx2 avx512f amx_bf16 amx_tile", True),
        (False, False, "fpu avx2 avx512f avx512_bf16", True),
        (False, False, "fpu avx2 avx512f avx512_vnni", False),
    ],
)
def test_cpu_bf16_is_detected_from_torch_or_cpuinfo(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    amx: bool,
    avx512_bf16: bool,
    flags: str,
    expected: bool,
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t: fpu\n")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    assert precision.cpuinfo_flags() == set(flags.split())  # the first processor's
    precision.cpu_supports_bf16.cache_clear()
    try:
        assert precision.cpu_supports_bf16() is expected
    finally:
        precision.cpu_supports_bf16.cache_clear()


def test_the_environment_keeps_a_bf16_cpu_in_fp32(
    detection, monkeypatch: pytest.MonkeyPatch
) -> None:
    detection(True)
    assert precision.uses_bf16(CPU, bf16=True) is True
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    assert precision.uses_bf16(CPU, bf16=True) is False


@pytest.mark.parametrize("supported", [True, False])
def test_uses_bf16_on_a_cpu_exactly_when_it_has_it(detection, supported: bool) -> None:
    detection(supported)
    assert precision.uses_bf16(CPU, bf16=True) is supported
    assert precision.uses_bf16(CPU, bf16=False) is False


def autocast_seen(model) -> list[tuple[bool, torch.dtype]]:
    """Record, at every forward, whether CPU autocast is on and to which dtype."""
    seen: list[tuple[bool, torch.dtype]] = []
    model.register_forward_pre_hook(
        lambda module, args: seen.append(
            (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))
        )
    )
    return seen


@pytest.mark.parametrize("supported", [True, False])
def test_inference_autocasts_to_bf16_exactly_when_the_cpu_has_it(
    detection, tiny_model_dir: Path, supported: bool, tiny_tokenizer
) -> None:
    from transformers import AutoModelForSequenceClassification

    detection(supported)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    seen = autocast_seen(model)
    ids = [[2, 5, 6, 7, 3], [2, 8, 9, 3], [2, 10, 3]]
    fp32 = predict_logits(
        model, ids, tokenizer=tiny_tokenizer, batch_size=2, device=CPU, bf16=False
    )
    assert seen and all(enabled is False for enabled, _ in seen)
    seen.clear()
    logits = predict_logits(
        model, ids, tokenizer=tiny_tokenizer, batch_size=2, device=CPU, bf16=True
    )
    assert len(seen) == 2  # two batches
    if supported:
        assert all(state == (True, torch.bfloat16) for state in seen)
        assert np.abs(logits - fp32).max() < 0.05  # bf16 keeps about 3 significant digits
    else:
        assert all(enabled is False for enabled, _ in seen)
        np.testing.assert_array_equal(logits, fp32)
    assert logits.dtype == np.float32


@pytest.mark.parametrize("supported", [True, False])
def test_the_torch_scorer_autocasts_exactly_when_the_cpu_has_it(
    detection,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
    tmp_path: Path,
    supported: bool,
) -> None:
    detection(supported)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder = tmp_path / "distilbert"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "tokenize_config.json").write_text(CutParams(max_length=32).model_dump_json())
    scorer = load_scorer("distilbert", "torch", folder, batch_size=8)
    seen = autocast_seen(scorer.model)
    proba = scorer.proba(["a film", "a dull film of no interest"])
    assert proba.shape == (2,)
    # The scorer's own probe of the last-layer shortcut runs in fp32, outside scoring.
    assert len(seen) == 1  # one batch
    assert seen[0] == (True, torch.bfloat16) if supported else seen[0][0] is False
    assert not torch.is_autocast_enabled("cpu")  # only while scoring


@pytest.mark.skipif(
    not precision.cpu_supports_bf16(),
    reason="this CPU has no bf16 units (AMX or AVX512-BF16): the project never runs bf16 on it",
)
def test_bf16_runs_for_real_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The default path of a CPU with bf16 units, which the rest of the suite keeps in fp32
    (IMDB_SENTIMENT_CPU_BF16=0) so that its exact comparisons hold on any CPU."""
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder = tmp_path / "distilbert"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "tokenize_config.json").write_text(CutParams(max_length=32).model_dump_json())
    scorer = load_scorer("distilbert", "torch", folder, batch_size=4)
    texts = ["a great film", "dull and boring", "the plot was superb", "a waste of time"]
    ids = scorer.encode(texts)
    seen = autocast_seen(scorer.model)
    bf16 = scorer.logits(ids, desc=None)
    assert seen == [(True, torch.bfloat16)]
    scorer.bf16 = False
    fp32 = scorer.logits(ids, desc=None)
    assert not np.array_equal(bf16, fp32)  # computed in bf16 indeed
    # bf16 keeps about 3 significant digits: the tiny model's logits move by under 0.05.
    assert np.abs(bf16 - fp32).max() < 0.05
