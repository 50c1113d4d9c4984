"""``lea --agents-listen HOST:PORT`` (lea_app/main.py): parsed into Options, off by default."""

from __future__ import annotations

import pytest

from lea_app.main import parse_args


def test_off_by_default() -> None:
    assert parse_args([]).agents_listen is None


@pytest.mark.parametrize(("text", "expected"), [("0.0.0.0:8422", ("0.0.0.0", 8422)), ("[::1]:0", ("::1", 0))])
def test_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_args(["--agents-listen", text]).agents_listen == expected


@pytest.mark.parametrize("text", ["8422", "host:", ":80", "host:99999", "host:x"])
def test_bad_values_are_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--agents-listen", text])
    assert "expected HOST:PORT" in capsys.readouterr().err
