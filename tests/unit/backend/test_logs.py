"""backend.logs: a log file on a full disk is said once, and a flood of refusals is throttled."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from backend import logs


class _FullDisk:
    """A file stream whose every write fails like a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        pass


def test_a_log_file_that_cannot_be_written_is_said_once_not_per_record(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = logs.setup_logging(data_dir)
    assert path is not None
    try:
        file = next(h for h in logging.getLogger().handlers if getattr(h, "baseFilename", None) == str(path))
        assert isinstance(file, logging.FileHandler)
        real = file.stream
        file.stream = _FullDisk()  # type: ignore[assignment]
        for i in range(5):
            logging.getLogger("backend.test").info("record %d", i)
        file.stream = real
        logging.getLogger("backend.test").info("after the disk was freed")
        file.flush()
    finally:
        logs.close_logging()
    err = capsys.readouterr().err
    assert err.count("cannot write the log file") == 1, err
    assert "Traceback" not in err and "Logging error" not in err, err
    assert "after the disk was freed" in path.read_text(encoding="utf-8")


def test_throttle_lets_a_burst_through_then_counts_what_it_left_out() -> None:
    throttle = logs.Throttle(burst=2, per=3600.0)
    assert [throttle.allow("token") for _ in range(5)] == [0, 0, None, None, None]
    assert throttle.allow("other") == 0  # per key
    throttle.per = 0.0  # the window has passed
    assert throttle.allow("token") == 3
    assert throttle.allow("token") == 0
