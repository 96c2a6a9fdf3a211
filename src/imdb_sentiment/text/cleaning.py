"""How a review's text is cleaned, the same way for training (`prepare`) and for new
reviews (`predict`, `score`).
"""

from __future__ import annotations

import html
import re

from imdb_sentiment.core.params import Params

# `<br />` is how the original files break lines; any other tag is markup, not review text.
HTML_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
WHITESPACE = re.compile(r"\s+")


class CleaningParams(Params):
    """The keys of the `prepare` section that say how text is cleaned."""

    clean_html: bool = True
    normalize_whitespace: bool = True


def clean_text(text: str, *, clean_html: bool, normalize_whitespace: bool) -> str:
    """Strip HTML line breaks, tags and entities; collapse runs of white space."""
    if clean_html:
        text = HTML_BREAK.sub(" ", text)
        text = HTML_TAG.sub(" ", text)
        text = html.unescape(text)
    if normalize_whitespace:
        text = WHITESPACE.sub(" ", text).strip()
    return text
