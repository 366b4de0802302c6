"""Byte-search field extraction agrees with a real JSON parser on generated JSON log lines."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tailrace.agent import enrichment

WANTED = ("level", "executionId", "method", "url", "status")
levels = st.sampled_from(["info", "INFO", "warn", "Error", "debug", "fatal", "trace", "bogus"])
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
values = {
    "level": levels,
    "executionId": strings,
    "method": st.sampled_from(["GET", "POST", "PUT"]),
    "url": strings,
    "status": st.integers(100, 599),
}


@st.composite
def json_lines(draw: st.DrawFn) -> dict[str, object]:
    fields = draw(st.lists(st.sampled_from(WANTED), unique=True))
    document: dict[str, object] = {name: draw(values[name]) for name in fields}
    extra = draw(st.dictionaries(st.sampled_from(["msg", "ts", "p", "n"]), strings, max_size=3))
    document.update(extra)
    return document


@settings(max_examples=300, deadline=None)
@given(document=json_lines(), spaced=st.booleans())
def test_fields_found_by_byte_search_match_a_json_parse(
    document: dict[str, object], spaced: bool
) -> None:
    line = orjson.dumps(document)
    if spaced:
        line = line.replace(b'":', b'" : ', 1)
    level, execution_id, attrs = enrichment.Enricher().json_fields(line, enrichment.INFO)
    word = document.get("level")
    expected_level = enrichment.LEVEL_WORDS.get(str(word).encode().lower(), -1) if word else -1
    assert level == (expected_level if expected_level >= 0 else enrichment.INFO)
    assert execution_id == document.get("executionId", "")
    expected_attrs = {k: document[k] for k in ("method", "url", "status") if k in document}
    assert (orjson.loads(attrs) if attrs else {}) == expected_attrs
