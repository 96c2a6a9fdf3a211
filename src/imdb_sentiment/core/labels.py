"""The two classes, as every model names them: 0 is NEGATIVE, 1 is POSITIVE."""

from __future__ import annotations

ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}
LABEL2ID = {name: idx for idx, name in ID2LABEL.items()}
