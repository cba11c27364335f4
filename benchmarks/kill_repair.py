"""Crash safety over many seeds: the test suite's kill harness (tests/helpers/crash.py), run longer.

For each seed a recording (2 synthetic cameras, h264, 6 short episodes; streaming or PNG path)
is SIGKILLed at a point the seed picks (while recording, saving, just after a save, or in
finalize), with or without its encoder processes; then `repair()` runs and the dataset is
checked: exactly the episodes whose save had returned (plus, possibly, the one being saved),
every frame in its row, `verify` healthy, a second repair a no-op. Prints a JSON summary.

    .venv/bin/python benchmarks/kill_repair.py --seeds 100
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers.crash import LENGTHS, PHASES, kill_during  # noqa: E402
from helpers.frames import episodes  # noqa: E402
from helpers.recording import check_identity  # noqa: E402
from streamrec import repair, verify  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--first", type=int, default=1000, help="first seed (the tests use 0..23)")
    args = ap.parse_args()
    outcomes: collections.Counter[str] = collections.Counter()
    failures = []
    t0 = time.perf_counter()
    for seed in range(args.first, args.first + args.seeds):
        work = Path(tempfile.mkdtemp(prefix="streamrec-kill-"))
        root = work / "ds"
        streaming = seed % 3 != 2
        everything = seed // 4 % 2 == 1
        try:
            saved = kill_during(root, seed, streaming, 1 if streaming else 2, everything=everything)
            report = repair(root)
            kept = [e["episode_index"] for e in episodes(root)]
            assert kept[:len(saved)] == saved and len(kept) - len(saved) in (0, 1), (saved, kept)
            check_identity(root, LENGTHS[:len(kept)])
            assert verify(root).healthy
            assert not repair(root).interrupted
            outcomes["ok"] += 1
            outcomes[f"killed while {PHASES[seed % len(PHASES)]}"] += 1
            outcomes["with its encoders" if everything else "encoders outlived it"] += 1
            outcomes["videos rebuilt from spools"] += bool(report.videos_rebuilt)
            outcomes["PNG episodes encoded by repair"] += bool(report.episodes_encoded)
            outcomes["an in-flight save survived"] += len(kept) > len(saved)
        except Exception as e:  # noqa: BLE001 - counted and reported
            failures.append({"seed": seed, "error": f"{type(e).__name__}: {e}"[:500]})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"seed {seed}: {'ok' if not failures or failures[-1]['seed'] != seed else 'FAILED'}",
              file=sys.stderr)
    print(json.dumps({"seeds": args.seeds, "passed": outcomes["ok"], "failures": failures,
                      "outcomes": dict(outcomes), "seconds": round(time.perf_counter() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
