"""The progress bar draws on a terminal only, and can be forced either way."""

from __future__ import annotations

import io

import pytest

from yprov4ml_hpc._progress import Progress, progress_enabled, track


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YPROV4ML_HPC_PROGRESS", raising=False)
    stream = io.StringIO()
    with Progress(10, "work", stream=stream) as bar:
        for _ in range(10):
            bar.update()
    assert stream.getvalue() == ""


def test_draws_on_a_terminal_and_clears_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YPROV4ML_HPC_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stream = FakeTTY()
    with Progress(4, "ranks", stream=stream) as bar:
        bar(4, 4, "rank files read")  # the merge's hook shape
    text = stream.getvalue()
    assert "rank files read [" in text and "4/4" in text
    assert text.endswith("\r\x1b[K")  # the bar is erased: the terminal is left clean


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("YPROV4ML_HPC_PROGRESS", "0")
    assert progress_enabled(FakeTTY()) is False
    monkeypatch.setenv("YPROV4ML_HPC_PROGRESS", "1")
    assert progress_enabled(io.StringIO()) is True
    monkeypatch.delenv("YPROV4ML_HPC_PROGRESS")
    monkeypatch.setenv("TERM", "dumb")
    assert progress_enabled(FakeTTY()) is False


def test_track_yields_everything() -> None:
    assert list(track(range(5), "x")) == [0, 1, 2, 3, 4]
    assert list(track(iter("ab"), "x")) == ["a", "b"]
