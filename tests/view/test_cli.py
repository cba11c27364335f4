"""`streamrec view` as a user runs it: a process that serves until Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil

STREAMREC = [sys.executable, "-m", "streamrec.cli"]


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*STREAMREC, "view", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("streamrec view: http://"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split()[-1]


def test_serves_until_ctrl_c(ids_dataset):
    proc, url = start(str(ids_dataset), "--port", "0", "--no-browser")
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"streamrec view" in r.read()
        # verify runs in a child process; wait for it to exist so that Ctrl-C has one to stop.
        deadline = time.monotonic() + 30
        while not psutil.Process(proc.pid).children(recursive=True) and time.monotonic() < deadline:
            with urllib.request.urlopen(url + "api/verify", timeout=10) as r:
                if b'"done"' in r.read():
                    break
            time.sleep(0.1)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "stopped" in proc.stderr.read()
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_other_host_warns(ids_dataset):
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the warning is printed, then binding fails.
    proc = subprocess.run([*STREAMREC, "view", str(ids_dataset), "--host", "192.0.2.1", "--no-browser"],
                          capture_output=True, text=True, timeout=60)
    assert "WARNING: listening on 192.0.2.1: anyone who can reach this machine" in proc.stderr
    assert proc.returncode == 2 and "cannot listen on 192.0.2.1:8765" in proc.stderr


def test_port_in_use(ids_dataset):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([*STREAMREC, "view", str(ids_dataset), "--port", str(port), "--no-browser"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_not_a_dataset(tmp_path):
    proc = subprocess.run([*STREAMREC, "view", str(tmp_path), "--no-browser"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "has no meta/ folder" in proc.stderr


def test_core_and_other_commands_do_not_import_the_server():
    code = ("import sys\nfrom streamrec.cli.__main__ import main\n"
            "try:\n    main(['view', '--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('aiohttp', 'plotly', 'streamrec.view') if m in sys.modules]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--no-browser" in proc.stdout
