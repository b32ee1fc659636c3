"""The OpenAPI document is valid OpenAPI 3.1, as a third-party tool reads it, and states the server's rules."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from icpy_kernels.server.openapi import BLANKS, document


def test_document_is_valid_openapi_31():
    # openapi-spec-validator is the checker client generators run first: what it refuses,
    # they refuse (a Media Type Object has no `description` in 3.1, for one).
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_topics_blanks_are_the_ones_python_strips():
    # The server drops topics that str.strip() empties; the pattern must name those characters
    # (every one of them is below U+3001).
    blank = re.compile(f"[{BLANKS}]")
    assert {c for c in map(chr, range(0x3001)) if blank.fullmatch(c)} == \
           {c for c in map(chr, range(0x3001)) if c.isspace()}
