"""The kill harness: a recording in a child process, SIGKILLed at a moment a seed picks.

Used by the crash-safety tests (tests/record/test_repair.py) and, over many more seeds, by
benchmarks/kill_repair.py.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from .frames import REPO

LENGTHS = [12, 9, 15, 7, 11, 10]

# The recording to kill: prints a line before and after each step, flushed, so the parent knows
# where it is and which saves had returned.
CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1] + "/tests")
from helpers.recording import features, frame_for, H264
from streamrec import DatasetRecorder
root, streaming, batch, lengths = sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), eval(sys.argv[5])
rec = DatasetRecorder.create(root, 30, features(), camera_encoder=H264, queue_full_policy="block",
                             streaming_encoding=streaming, batch_encoding_size=batch)
ident = 0
for e, n in enumerate(lengths):
    print("recording", e, flush=True)
    for _ in range(n):
        rec.add_frame(frame_for(ident, 0, float(ident)))
        ident += 1
        time.sleep(0.005)
    print("saving", e, flush=True)
    rec.save_episode()
    print("saved", e, flush=True)
print("finalizing", flush=True)
rec.finalize()
print("finalized", flush=True)
"""

PHASES = ("recording", "saving", "saved", "finalizing")


def kill_during(root: Path, seed: int, streaming: bool, batch: int, everything: bool = False) -> list[int]:
    """Run the recording and SIGKILL it at a point the seed picks; return the episodes whose
    save had returned. With `everything`, its encoder processes die at the same moment (a power
    cut or a kill of the whole tree); otherwise they outlive it briefly and close their files."""
    rng = random.Random(seed)
    phase = PHASES[seed % len(PHASES)]
    episode = rng.randrange(len(LENGTHS)) if phase != "finalizing" else None
    delay = rng.uniform(0, 0.15)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(REPO), str(root), "1" if streaming else "0",
                             str(batch), repr(LENGTHS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saved = []
    try:
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "saved":
                saved.append(int(rest[0]))
            if word == phase and (episode is None or int(rest[0]) == episode):
                time.sleep(delay)
                encoders = psutil.Process(proc.pid).children() if everything else []
                proc.send_signal(signal.SIGKILL)
                for encoder in encoders:
                    encoder.kill()
                break
        for line in proc.stdout:  # lines written before the kill landed
            if line.startswith("saved "):
                saved.append(int(line.split()[1]))
    finally:
        proc.kill()
        proc.wait()
    return saved
