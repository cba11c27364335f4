"""`streamrec probe`: --json for scripts, the table, and bad arguments."""

from __future__ import annotations

import json

import pytest

from streamrec.cli.__main__ import main


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when not on a terminal


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--width", "128", "--height", "96", "--fps", "15", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    results = {r["encoder"]: r for r in out["results"]}
    assert out["auto"] in results and results[out["auto"]]["works"] or out["auto"] == "libsvtav1"
    for name in ("libsvtav1", "libx264", "libx265"):
        r = results[name]
        assert (r["compiled_in"], r["works"], r["width"], r["height"], r["fps"]) == (True, True, 128, 96, 15)
        assert r["ms_per_frame"] > 0 and r["max_cameras"] >= 1
    for r in results.values():
        assert set(r) >= {"encoder", "platform", "compiled_in", "works", "ms_per_frame", "cpu_ms_per_frame",
                          "max_cameras", "options", "error", "cached"}
        assert r["works"] or r["error"]
    assert out["machine"]["pyav"] and out["cache_file"].endswith(".json")


def test_table_and_cache(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--width", "128", "--height", "96"]) == 0
    assert main(["probe", "--width", "128", "--height", "96"]) == 0  # the second one reads the cache
    out = capsys.readouterr().out
    assert "streamrec probe: 128x96 yuv420p at 30 fps" in out
    assert "libsvtav1" in out and "vcodec=auto picks" in out
    assert "result(s) from the cache" in out


@pytest.mark.parametrize("args,message", [
    (["--width", "127"], "streamrec probe: --width=127: must be an even integer > 0"),
    (["--fps", "0"], "streamrec probe: --fps=0: must be an integer > 0"),
    (["--pix-fmt", "rgb24"],
     "streamrec probe: EncoderConfig.pix_fmt = 'rgb24': vcodec=auto ends with libsvtav1, which accepts"),
])
def test_bad_arguments_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", *args]) == 2
    assert message in capsys.readouterr().err
