"""Secrets never reach the log, whichever library logs them and however."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from bot import logs

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]):
    logs.configure(logging.DEBUG, secrets=[SecretStr(TOKEN), None])
    yield capsys
    logging.getLogger().handlers.clear()


def test_token_in_a_library_message_is_redacted(captured: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("telegram.ext").warning(
        "POST https://api.telegram.org/bot%s/getUpdates failed", TOKEN
    )
    err = captured.readouterr().err
    assert TOKEN not in err
    assert "https://api.telegram.org/bot[redacted]/getUpdates failed" in err


def test_token_in_a_traceback_is_redacted(captured: pytest.CaptureFixture[str]) -> None:
    try:
        raise RuntimeError(f"connection to /bot{TOKEN}/sendMessage reset")
    except RuntimeError:
        logging.getLogger("whydown").exception("send failed")
    err = captured.readouterr().err
    assert (
        TOKEN not in err and "RuntimeError: connection to /bot[redacted]/sendMessage reset" in err
    )


def test_http_request_lines_are_not_logged_at_info(captured: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("httpx").info(
        'HTTP Request: GET https://api.telegram.org/bot%s/getMe "200 OK"', TOKEN
    )
    assert captured.readouterr().err == ""
