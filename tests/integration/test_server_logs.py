"""``lea-backend serve`` keeps a log: ``DATA_DIR/logs/backend.log`` (INFO and up) and stderr
(WARNING and up), one line per event worth an operator's attention, never a traceback for a
client's mistake. The one-shot commands stay quiet (their one error line is tested in test_cli).
"""

from __future__ import annotations

from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from tests.helpers.server import API, create_token, lea_backend, running_server


def log_text(data_dir: Path) -> str:
    return (data_dir / "logs" / "backend.log").read_text(encoding="utf-8")


def test_serve_logs_refused_tokens_and_bad_frames_to_its_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    viewer = create_token(data, "viewer", "vic")
    with running_server(data) as server:
        with server.client("not-a-token") as http:
            assert http.get(f"{API}/whoami").status_code == 401
        with server.watch(viewer) as ws:
            assert server.receive(ws)["type"] == "hello"
            # A text frame that is not UTF-8: the server closes the stream with 1007.
            with ws.protocol_mutex:
                ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe not utf-8"))
                ws.send_data()
            try:
                while True:
                    ws.recv(timeout=10)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1007, closed
    text = log_text(data)
    lines = text.splitlines()
    assert any(" INFO backend.manager: restored revision" in line for line in lines), text
    refused = [line for line in lines if "refused a request" in line]
    assert len(refused) == 1 and " INFO " in refused[0] and "unknown or was revoked" in refused[0], text
    assert "not-a-token" not in text  # never the token itself
    utf8 = [line for line in lines if "not valid UTF-8" in line]
    assert len(utf8) == 1 and " INFO " in utf8[0], text
    assert "Traceback" not in text and " ERROR " not in text, text
    assert "connection open" not in text and "[accepted]" in text, text  # one line per stream, naming it
    stderr = server.output()[1]
    assert stderr.strip().splitlines() == ["lea-backend: stopped"], stderr  # INFO lines go to the file only


def test_one_shot_commands_write_no_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = lea_backend(data, "history", "peer", "not-a-uuid")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert not (data / "logs" / "backend.log").exists()
