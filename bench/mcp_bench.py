"""Time from starting `kpi mcp` to its answer to `tools/list`, as an assistant sees it.

Usage: python bench/mcp_bench.py [--runs 10]

The MCP SDK's own client starts the server over stdio (a fresh process each run), initializes
and lists the tools; the clock runs from just before the process is started to the list in
hand. The first start of an installation has no cached handshake answers (see
kpi_registry/mcp_server.py) and is shown on its own; the median of --runs later starts is the
figure (issue 18: within a second).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import load, median, record  # noqa: E402


async def start_to_tools_list(env: dict[str, str], cwd: str) -> float:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "kpi_registry", "mcp"], env=env, cwd=cwd
    )
    started = time.perf_counter()
    async with Client(params) as client:
        tools = await client.list_tools()
        elapsed = time.perf_counter() - started
    if not tools.tools:
        raise SystemExit("kpi mcp listed no tools")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    import mcp  # noqa: F401  (the client's import is not the server's start-up)

    with tempfile.TemporaryDirectory(prefix="kpi-mcp-bench-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "KPI_REGISTRY_PATH"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["KPI_REGISTRY_CACHE"] = cache
        first = asyncio.run(start_to_tools_list(env, cache))
        print(f"first start (no cached handshake): {first:.3f} s [{load()}]")
        times = [asyncio.run(start_to_tools_list(env, cache)) for _ in range(args.runs)]
    print("later starts: " + " ".join(f"{t:.3f}" for t in times))
    record(
        "kpi mcp: start to tools/list (median)",
        median(times) * 1000,
        1000,
        unit="ms",
        note=f"{args.runs} starts; first start {first * 1000:.0f} ms",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
