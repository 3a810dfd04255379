"""A broker URL's secrets never reach an error line, even in a URL that does not parse
as its writer meant: a password holding `/`, `?` or `#` that was not percent-encoded
(base64 and generated passwords often do) ends the host part early, so the secret is
read as the path, the query or the fragment."""

from __future__ import annotations

import pytest

from ccdash import cli
from ccdash.brokers.base import BrokerError
from ccdash.brokers.urls import check_url, redact_url

SECRET = "s3cr3tPW"

MISREAD = [
    f"redis://:pa/{SECRET}@127.0.0.1:6379/0",
    f"redis://:pa?{SECRET}@127.0.0.1:6379/0",
    f"redis://:pa#{SECRET}@127.0.0.1:6379/0",
    f"rediss://user:x/y?{SECRET}#z@cache.example:6380/2?queue=q",
    f"redis://:pa?worker=a@{SECRET}@127.0.0.1:6379/0",
    f"redis://127.0.0.1:6379/0?{SECRET}",
    f"redis://127.0.0.1:6379/0?queue=q&{SECRET}",
    f"sqlite:///q.db?{SECRET}",
    f"sqlite:///q.db?password={SECRET}",
    f"sqlite://:pa/{SECRET}@host/q.db",
    f"redis://:p@ss/{SECRET}@127.0.0.1:6379/0",  # an '@' in the password too
    f"redis://:p@ss?{SECRET}@127.0.0.1:6379/0",
    f"redis://127.0.0.1:6379/0?{SECRET}=",  # a token ending in '=' (base64)
    f"redis://127.0.0.1:6379/0?queue=q&{SECRET}==",
    f"sqlite:///q.db?{SECRET}=",
]


@pytest.mark.parametrize("url", MISREAD)
def test_a_secret_misread_as_path_query_or_fragment_is_not_echoed(url: str) -> None:
    """The refusal of such a URL, and the URL shown anywhere, hold no part of the secret."""
    assert SECRET not in redact_url(url)
    with pytest.raises(BrokerError) as err:
        check_url(url)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("url", MISREAD[:3])
def test_the_command_line_refusal_does_not_show_the_secret(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ccdash --demo --broker URL` with such a URL: one line, exit 2, no secret."""
    assert cli.main(["--demo", "--broker", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccdash: error: --broker: ") and err.count("\n") == 1, err
    assert SECRET not in err, err


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:1/0?queue=orders&ttl=5",
        "redis://h:1/0?worker=w@host-a",
        "sqlite:///x.db",
        "sqlite:////tmp/q.db",
        "sqlite:///x.db?durability=full",
        "sqlite:////tmp/run@2026-12-04/q.db",
        "sqlite:///runs/a@b/q.db",
    ],
)
def test_a_url_with_nothing_to_hide_is_shown_as_given(url: str) -> None:
    """Known options, an `@` in a worker name, sqlite's durability, an `@` in a SQLite
    file's path (a SQLite URL has no user part to hide): shown unchanged."""
    assert redact_url(url) == url
    check_url(url)


def test_the_refusal_says_to_percent_encode_the_password() -> None:
    """A cut user part is named as such, not as a URL without a host."""
    with pytest.raises(BrokerError, match="percent-encode") as err:
        check_url(MISREAD[0])
    assert "redis://***@127.0.0.1:6379/0" in str(err.value)


def test_the_redaction_knows_every_option_the_check_knows() -> None:
    """An option the URL check accepts is shown by the redaction (one list, two modules)."""
    from ccdash.brokers.redact import known_options
    from ccdash.brokers.urls import REDIS_OPTIONS, TLS_OPTIONS

    assert known_options("redis") == {*REDIS_OPTIONS, *TLS_OPTIONS}


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?queue=%1bq",
        "redis://127.0.0.1:6379/0?qu%1beue=q",
        "redis://127.0.0.1:6379/x%1b",
        "rediss://127.0.0.1:6379/0?ssl_cert_reqs=%1b",
        "redis://h:1/0#\x1b",
        "http://h\x1b/0",
    ],
)
def test_a_control_character_in_a_url_is_shown_as_one_escape(url: str) -> None:
    """The refusal shows ESC as `\\x1b`, as every other error line does; it showed
    `\\\\x1b` (the sanitiser's escape, repr()-ed: its backslash doubled)."""
    with pytest.raises(BrokerError) as err:
        check_url(url)
    text = str(err.value)
    assert "\\\\" not in text and "\x1b" not in text, text


def test_a_misspelt_option_is_still_named_with_its_suggestion() -> None:
    """An unknown option close to a known one is named, with the suggestion; one that is
    not (a token, perhaps) is refused without its name."""
    with pytest.raises(BrokerError, match="unknown option 'qeueu'.*did you mean 'queue'"):
        check_url("redis://127.0.0.1:6379/0?qeueu=orders")
    with pytest.raises(BrokerError, match="an unknown option") as err:
        check_url(f"redis://127.0.0.1:6379/0?{SECRET}=x")
    assert SECRET not in str(err.value)
