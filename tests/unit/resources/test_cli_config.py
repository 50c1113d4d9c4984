"""``--config FILE`` (resources.cli_config): the TOML keys are the command's long options, checked by its parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from backend import cli as backend_cli
from lea_peer import cli as peer_cli
from resources.cli_config import ConfigError, config_arguments, subcommand_parser, with_config


def serve_parser() -> argparse.ArgumentParser:
    return subcommand_parser(backend_cli.build_parser(), "serve")


def test_keys_are_options_and_the_command_line_wins(tmp_path: Path) -> None:
    config = tmp_path / "lea.toml"
    config.write_text('host = "0.0.0.0"\nport = 9000\ninsecure_http = true\ndemo = false\n'
                      'tls-cert = "/etc/lea/tls/server.pem"\n')
    argv = with_config(["--data-dir", "/var/lib/lea", "serve", "--config", str(config), "--port", "9001"],
                       "serve", serve_parser())
    assert argv == ["--data-dir", "/var/lib/lea", "serve", "--host", "0.0.0.0", "--port", "9000", "--insecure-http",
                    "--tls-cert", "/etc/lea/tls/server.pem", "--port", "9001"]
    args = backend_cli.build_parser().parse_args(argv)
    assert (args.host, args.port, args.insecure_http, args.demo) == ("0.0.0.0", 9001, True, False)
    assert str(args.tls_cert) == "/etc/lea/tls/server.pem"


def test_without_config_the_arguments_are_unchanged() -> None:
    assert with_config(["serve", "--port", "1"], "serve", serve_parser()) == ["serve", "--port", "1"]
    assert with_config(["verify"], "serve", serve_parser()) == ["verify"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("colour = 'red'\n", "unknown key 'colour'"),
        ("insecure-http = 'yes'\n", "insecure-http is a switch"),
        ("port = [1, 2]\n", "port takes one value, not a list"),
        ("host = {a = 1}\n", "host must be a string or a number"),
        ("port = \n", "not a TOML file"),
    ],
)
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, text: str, said: str) -> None:
    config = tmp_path / "lea.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=r"lea\.toml") as raised:
        config_arguments(config, serve_parser())
    assert said in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        config_arguments(tmp_path / "nope.toml", serve_parser())


def test_a_bad_value_is_refused_by_the_parser_as_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lea.toml"
    config.write_text("port = 70000\n")
    with pytest.raises(SystemExit):
        backend_cli.main(["--data-dir", str(tmp_path / "data"), "serve", "--config", str(config)])
    assert "70000" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # a refusal changes nothing on disk


def test_lea_backend_names_an_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lea.toml"
    config.write_text("prot = 1\n")
    assert backend_cli.main(["--data-dir", str(tmp_path / "data"), "serve", "--config", str(config)]) != 0
    assert "unknown key 'prot'" in capsys.readouterr().err


def test_peer_toml_fills_the_required_options_and_append_lists(tmp_path: Path) -> None:
    config = tmp_path / "peer.toml"
    config.write_text('backend = "https://lea.lab.example:8421"\npeer-id = "00000000-0000-4000-8000-0000000000a1"\n'
                      'can-sim = ["ecu1=udp:127.0.0.1:20000", "ecu2=udp:127.0.0.1:20001"]\n')
    parser = peer_cli._parser()
    argv = with_config(["run", "--config", str(config), "--token-file", "/run/credentials/x/token"], "run",
                       subcommand_parser(parser, "run"))
    args = parser.parse_args(argv)
    assert args.backend == "https://lea.lab.example:8421" and args.peer_id.endswith("a1")
    assert args.can_sim == ["ecu1=udp:127.0.0.1:20000", "ecu2=udp:127.0.0.1:20001"]
    assert str(args.token_file) == "/run/credentials/x/token"


def test_lea_peer_refuses_a_bad_config_with_the_final_exit_status(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "peer.toml"
    config.write_text("backnd = 'x'\n")
    assert peer_cli.main(["run", "--config", str(config)]) == peer_cli.EXIT_FINAL
    assert "unknown key 'backnd'" in capsys.readouterr().err
