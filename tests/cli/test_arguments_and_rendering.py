"""The pure parts of `tailrace logs`: targets, addresses, colour choice, rendering, replay guard."""

from __future__ import annotations

import io

import pytest

from tailrace.logs_client import connection, failures, following, options, rendering


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("function/hello", "functions", "hello"),
        ("fn/hello", "functions", "hello"),
        ("pipelines/wc", "pipelines", "wc"),
        ("po/hello-1", "pods", "hello-1"),
        ("hello-1", "pods", "hello-1"),  # a bare name is a pod, as in kubectl
    ],
)
def test_targets_accept_kubectl_style_prefixes(text: str, kind: str, name: str) -> None:
    target = options.parse_target(text)
    assert (target.kind, target.name) == (kind, name)


@pytest.mark.parametrize("text", ["deployment/x", "function/", "function/a/b"])
def test_unknown_or_malformed_targets_are_usage_errors(text: str) -> None:
    with pytest.raises(failures.UsageError):
        options.parse_target(text)


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://logs.example.com/", "https://logs.example.com"),
        (" tailrace:8080 ", "http://tailrace:8080"),
    ],
)
def test_server_without_a_scheme_means_http(value: str, url: str) -> None:
    assert connection.normalise_server(value) == url


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_is_for_terminals_unless_no_color_or_a_dumb_terminal() -> None:
    assert rendering.wants_colour("auto", _Terminal(), {})
    assert not rendering.wants_colour("auto", io.StringIO(), {})
    assert not rendering.wants_colour("auto", _Terminal(), {"NO_COLOR": "1"})
    assert not rendering.wants_colour("auto", _Terminal(), {"TERM": "dumb"})
    assert rendering.wants_colour("always", io.StringIO(), {"NO_COLOR": "1"})
    assert not rendering.wants_colour("never", _Terminal(), {})


def test_plain_text_is_the_message_alone_even_for_a_truncated_line() -> None:
    out = io.StringIO()
    renderer = rendering.Renderer("text", out, colour=False, timestamps=False, prefix=False)
    renderer.write({"message": "cut here", "level": "ERROR", "truncated": True})
    assert out.getvalue() == "cut here\n"


def test_a_replayed_id_is_recognised_within_the_window_only() -> None:
    seen = following.RecentIds(size=2)
    assert seen.add("1")
    assert not seen.add("1")
    assert seen.add("2")
    assert seen.add("3")  # "1" leaves the window
    assert seen.add("1")


def test_escape_sequences_in_a_message_are_shown_not_obeyed_on_a_terminal() -> None:
    record = {"message": "evil \x1b]0;pwned\x07 title\tok", "level": "INFO"}
    on_terminal = io.StringIO()
    rendering.Renderer(
        "text", on_terminal, colour=False, timestamps=False, prefix=False, terminal=True
    ).write(record)
    assert on_terminal.getvalue() == "evil \\x1b]0;pwned\\x07 title\tok\n"
    piped = io.StringIO()
    rendering.Renderer("text", piped, colour=False, timestamps=False, prefix=False).write(record)
    assert piped.getvalue() == record["message"] + "\n"
