"""Run every benchmark at the sizes the issues name, one after the other (`make bench`).

Each script prints its own figures and ratios against its baseline. Expect about 20 minutes on
a 2-core machine; pass a script name to run only that one, e.g. `python bench/run_all.py eval`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "load": ["load_bench.py", "--n", "20000"],
    "eval": ["eval_bench.py", "--rows", "10000000"],
    "sql": ["sql_bench.py"],
    "site": ["site_scale.py", "--n", "20000"],
}


def main() -> int:
    chosen = sys.argv[1:] or list(BENCHES)
    for name in chosen:
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
            return 2
        script, *args = BENCHES[name]
        print(f"== {name}: {script} {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *args])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
