"""Encoder probes: real encoders through PyAV in child processes, the cache, and what `auto` picks."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest

from helpers.hardware import NVIDIA, needs_compiled, no_gpu
from streamrec import ConfigError, EncoderConfig, probe
from streamrec.encode._probe import cache_dir, choose_encoders

SMALL = {"width": 128, "height": 96, "fps": 30}


def test_software_encoders_work_and_are_timed():
    report = probe(["h264", "libsvtav1"], **SMALL)  # aliases as EncoderConfig takes them
    for r in report.results:
        assert (r.compiled_in, r.works, r.error) == (True, True, None), r
        assert r.ms_per_frame > 0 and r.cpu_ms_per_frame > 0 and r.max_cameras >= 1
        assert (r.width, r.height, r.pix_fmt, r.fps) == (128, 96, "yuv420p", 30)
    x264 = report.results[0]
    assert x264.options == {"crf": "30"}  # the settings EncoderConfig() maps to for x264


@no_gpu
@needs_compiled("h264_nvenc")
def test_nvenc_without_a_gpu_reports_the_drivers_message():
    (result,) = probe(["h264_nvenc"], **SMALL, refresh=True).results
    assert result.compiled_in and not result.works
    assert "Cannot load libcuda.so.1" in result.error  # FFmpeg's own words: what the user can act on
    assert result.options == {"rc": "constqp", "qp": "30"}


@pytest.mark.skipif(not NVIDIA, reason="no NVIDIA device (/dev/nvidia*) on this machine")
def test_nvenc_with_a_gpu_works():
    (result,) = probe(["h264_nvenc"], **SMALL, refresh=True).results
    assert result.works, result.error


@no_gpu
def test_auto_picks_the_software_encoder_here_and_says_why_not_the_others(caplog):
    report = probe(**SMALL)
    assert report.auto == "libsvtav1"
    assert not any(r.works for r in report.results if r.encoder.endswith(("_nvenc", "_qsv", "_v4l2m2m", "_vaapi")))
    assert all(r.error for r in report.results if not r.works)
    with caplog.at_level(logging.INFO, logger="streamrec"):
        chain = choose_encoders(EncoderConfig(vcodec="auto"), 128, 96, 30, None, camera="top")
    assert [c.encoder for c in chain] == ["libsvtav1"]
    assert "top: vcodec=auto chose libsvtav1" in caplog.text
    if "h264_nvenc" in {r.encoder for r in report.results if r.compiled_in}:
        assert "Cannot load libcuda.so.1" in caplog.text


def test_fallback_chains():
    assert choose_encoders(EncoderConfig(), *SMALL.values(), None) == (EncoderConfig(),)
    x264 = EncoderConfig(vcodec="h264", preset="ultrafast")
    chain = choose_encoders(x264, *SMALL.values(), None)
    # A preset SVT-AV1 cannot take is dropped for the fallback, the rest kept.
    assert chain == (x264, EncoderConfig(vcodec="libsvtav1"))


def test_results_are_cached_per_machine_and_refresh_measures_again():
    first = probe(["libx264"], **SMALL, refresh=True)
    assert not first.results[0].cached
    assert first.cache_file.parent == cache_dir() and first.cache_file.exists()
    assert str(cache_dir()).startswith(os.environ["XDG_CACHE_HOME"])
    again = probe(["libx264"], **SMALL)
    assert again.results[0].cached and again.results[0].ms_per_frame == first.results[0].ms_per_frame
    other_size = probe(["libx264"], width=160, height=96, fps=30)
    assert not other_size.results[0].cached
    assert not probe(["libx264"], **SMALL, refresh=True).results[0].cached


def test_a_hung_probe_is_stopped_at_its_deadline(tmp_path):
    pids = tmp_path / "pids"
    hang = [sys.executable, "-c", f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); "
            "time.sleep(600)"]
    t0 = time.monotonic()
    report = probe(["libx264", "libsvtav1"], **SMALL, refresh=True, timeout_s=1.0, _command=hang)
    assert time.monotonic() - t0 < 300, "the probe waited for the hung child instead of killing it"
    for r in report.results:
        assert not r.works
        assert r.error == "no answer within 1 s (a hung driver?); the probe process was stopped"
    # One child per encoder (the first hung, so the second got a new one), each gone.
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert report.auto == "libsvtav1"  # the last resort, whatever its probe said


def test_a_probe_process_that_crashes_is_reported(tmp_path):
    crash = [sys.executable, "-c", "import os, signal, sys; sys.stderr.write('driver exploded\\n'); "
             "sys.stderr.flush(); os.kill(os.getpid(), signal.SIGSEGV)"]
    (result,) = probe(["libx264"], **SMALL, refresh=True, _command=crash).results
    assert not result.works
    assert result.error == "the probe process was killed by SIGSEGV while trying it; its last output: driver exploded"


def test_unknown_encoder_is_refused():
    with pytest.raises(ConfigError, match=r"probe\(\): unknown encoder 'vp9'; streamrec drives \["):
        probe(["vp9"])


def test_probe_cache_survives_an_unwritable_cache_dir(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # a file where the folder should be
    report = probe(["libx264"], **SMALL)
    assert report.results[0].works and not Path(blocked).is_dir()
