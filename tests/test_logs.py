"""Secrets never reach the log, whichever library logs them and however."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot import logs

TOKEN = "42:fake-token-for-redaction-tests"


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    logs.configure(logging.WARNING)  # back to the plain record factory
    logging.getLogger().handlers.clear()


def _configure() -> None:
    # inside the test itself: the handler binds to the stderr that capsys captures for this phase
    logs.configure(logging.DEBUG, secrets=[SecretStr(TOKEN), None])


def test_token_in_a_library_message_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    _configure()
    logging.getLogger("telegram.ext").warning(
        "POST https://api.telegram.org/bot%s/getUpdates failed", TOKEN
    )
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert "https://api.telegram.org/bot[redacted]/getUpdates failed" in err


def test_token_in_a_traceback_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    _configure()
    try:
        raise RuntimeError(f"connection to /bot{TOKEN}/sendMessage reset")
    except RuntimeError:
        logging.getLogger("whydown").exception("send failed")
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert "RuntimeError: connection to /bot[redacted]/sendMessage reset" in err


def test_http_request_lines_are_not_logged_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    _configure()
    logging.getLogger("httpx").info(
        'HTTP Request: GET https://api.telegram.org/bot%s/getMe "200 OK"', TOKEN
    )
    assert capsys.readouterr().err == ""


def test_a_malformed_log_call_does_not_raise_at_the_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure()
    logger = logging.getLogger("whydown")
    logger.info("%d drivers", "five")  # a bug in a log call, not in the program
    logger.info("still logging for %s", TOKEN)
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err  # reported by the handler, as logging does
    assert "still logging for [redacted]" in err
