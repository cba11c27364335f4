"""Before and after, side by side: one benchmark script run from several checkouts, in turn.

Each round runs the script from every checkout one right after the other (with that checkout's
own `.venv`), as is and again under `capsh --drop=cap_sys_nice`, so that the runs compared see
the same machine state. The script must end its output with one JSON object
(record.py, cpu_per_frame.py, save_time.py do). Results, with each run's commit, load average and
command, go to benchmarks/results/compare-NAME.json; `--keys` picks figures for the printed table.

    .venv/bin/python benchmarks/compare.py --name api-copy --checkout ../before --checkout . --rounds 2 \\
        --keys add_frame_ms.p99,save_ms.max -- record.py --cameras 2 --seconds 10 --episodes 2

(A key with dots reads into nested objects.)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from _footage import cap_sys_nice

HERE = Path(__file__).resolve().parent


def commit(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


def run(checkout: Path, script: list[str], nocap: bool) -> dict[str, Any]:
    python = checkout / ".venv" / "bin" / "python"
    args = [str(python), str(checkout / "benchmarks" / script[0]), *script[1:]]
    command = ["capsh", "--drop=cap_sys_nice", "--", "-c", shlex.join(args)] if nocap else args
    load = os.getloadavg()[0]
    t = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=checkout, timeout=3600)
    wall = round(time.monotonic() - t, 1)
    result = last_json(done.stdout)
    if done.returncode != 0 or result is None:
        return {"error": done.stderr[-3000:], "returncode": done.returncode, "load_before": load, "wall_s": wall}
    return {"load_before": round(load, 2), "wall_s": wall, "result": result}


def last_json(text: str) -> dict[str, Any] | None:
    """The last JSON object in the output, on one line or indented over several."""
    lines = text.splitlines()
    for i in reversed(range(len(lines))):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
    return None


def pick(result: dict[str, Any], key: str) -> Any:
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkout", action="append", type=Path, required=True, help="a checkout with its .venv")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--name", required=True)
    ap.add_argument("--keys", default="", help="comma-separated figures of the script's JSON for the table")
    ap.add_argument("--no-nocap", action="store_true")
    ap.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...], a file of benchmarks/")
    args = ap.parse_args()
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    checkouts = [c.resolve() for c in args.checkout]
    caps = ["as is"] + ([] if args.no_nocap or not cap_sys_nice() else ["nocap"])
    out = HERE / "results" / f"compare-{args.name}.json"
    runs = []
    for rnd in range(1, args.rounds + 1):
        for cap in caps:
            for checkout in checkouts:
                r = {"round": rnd, "caps": cap, "checkout": str(checkout), "commit": commit(checkout),
                     **run(checkout, script, cap == "nocap")}
                runs.append(r)
                keys = {k: pick(r.get("result", {}), k) for k in filter(None, args.keys.split(","))}
                print(json.dumps({k: v for k, v in r.items() if k != "result"} | keys), flush=True)
                out.write_text(json.dumps({"script": script, "machine": {"cpus": os.cpu_count()}, "runs": runs},
                                          indent=1) + "\n")


if __name__ == "__main__":
    main()
