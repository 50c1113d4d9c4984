"""``lea-backend serve`` hands its command line to ``ServeOptions``: the demo benches' delay scale."""

from __future__ import annotations

from pathlib import Path

import pytest

import backend.server.serve
from backend import cli
from backend.server.serve import ServeOptions


def served_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> ServeOptions:
    seen: list[ServeOptions] = []
    monkeypatch.setattr(cli, "setup_logging", lambda _data_dir: None)  # the test's logging stays as it is
    def fake_serve(options: ServeOptions) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(backend.server.serve, "serve", fake_serve)
    assert cli.main(["serve", "--data-dir", str(tmp_path / "data"), *args]) == 0
    (options,) = seen
    return options


def test_demo_delay_scale_reaches_the_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert served_with(monkeypatch, tmp_path, "--demo-delay-scale", "0").demo_delay_scale == 0.0
    assert served_with(monkeypatch, tmp_path, "--demo-delay-scale", "0.25").demo_delay_scale == 0.25


def test_demo_delay_scale_defaults_to_realistic_delays(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert served_with(monkeypatch, tmp_path).demo_delay_scale == 1.0


@pytest.mark.parametrize("value", ["-1", "nan", "fast", "1000"])
def test_a_bad_demo_delay_scale_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        served_with(monkeypatch, tmp_path, "--demo-delay-scale", value)
    assert exit_.value.code == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "--demo-delay-scale" in err and err.count("\n") == 1, err
