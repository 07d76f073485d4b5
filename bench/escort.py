"""Discharge to refusal at the gate: how long a discharged patient's escort permit keeps working.

Runs ``edge demo --scenario escort --json`` ``RUNS`` times (real registry, real daemons, mutual TLS, gates
syncing every 1 s) and reads the measured time from the DischargePatient call to the first Verify answered
DENY CARD_REVOKED (the gate polls every 0.2 s). The delay is one sync interval at most plus a sync round and
a session; a site's worst case is its ``registry.sync_interval_s`` plus the same small overhead.

    .venv/bin/python bench/escort.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save

RUNS = 10


def main() -> None:
    delays = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-m", "edge", "demo", "--scenario", "escort", "--json"],
                             capture_output=True, text=True, check=True).stdout
        step = next(json.loads(line) for line in out.splitlines() if '"denied_after_discharge"' in line)
        delays.append(step["discharge_to_refusal_s"])
    result = {"date": time.strftime("%Y-%m-%d"), "sync_interval_s": 1, "runs": RUNS, "delays_s": delays,
              "median_s": round(statistics.median(delays), 2), "max_s": max(delays),
              "overhead_beyond_interval_s": round(max(delays) - 1, 2)}
    print(save("escort", result))
    print(result)


if __name__ == "__main__":
    main()
