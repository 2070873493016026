"""`kpi mcp` end to end: the MCP SDK's own client starts the server over stdio, initializes,
lists the tools and calls each one; bad arguments are tool errors, and the server lives on."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOOLS = {"search_kpis", "get_kpi", "kpi_inputs", "evaluate_kpis", "compile_sql", "explain_change"}
MRR = """customer,month,segment,revenue
a,2024-01,SMB,100
b,2024-01,ENT,200
a,2024-02,SMB,120
b,2024-02,ENT,150
c,2024-02,SMB,50
a,2024-03,SMB,120
c,2024-03,SMB,60
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KPI_REGISTRY_PATH"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def server(*args: str, cwd: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "kpi_registry", "mcp", *args], env=_env(), cwd=cwd
    )


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


@pytest.fixture
def folders(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mrr.csv").write_text(MRR)
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "mrr.csv").write_text(MRR)
    (data / "link.csv").symlink_to(secret / "mrr.csv")
    return data, secret


def test_every_tool_over_stdio(folders):
    data, secret = folders

    async def session():
        # a first start keeps the SDK's handshake answers: the session below starts fast,
        # from them, and is then handed to the SDK
        async with Client(server("--root", str(data), cwd=data.parent)) as client:
            await client.list_tools()
        async with Client(server("--root", str(data), cwd=data.parent)) as client:
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            assert all(t.annotations and t.annotations.read_only_hint for t in listed.tools)

            found = await client.call_tool("search_kpis", {"text": "NRR", "limit": 3})
            assert not found.is_error
            hits = json.loads(text(found)) if not found.structured_content else None
            hits = hits or found.structured_content["result"]
            assert hits[0]["id"] == "net_revenue_retention"
            by_function = await client.call_tool("search_kpis", {"function": "finance"})
            assert by_function.structured_content["result"]
            assert {h["function"] for h in by_function.structured_content["result"]} == {"finance"}

            kpi = (await client.call_tool("get_kpi", {"kpi": "NRR"})).structured_content
            assert kpi["id"] == "net_revenue_retention"
            assert kpi["formula"]["text"] and "ast" not in kpi["formula"]
            assert kpi["fields"]["examples"] and kpi["fields"]["definition"]
            assert set(kpi["relations"]) == {"leading", "lagging", "related", "influences"}
            assert [c["name"] for c in kpi["columns_needed"]] == ["revenue"]

            needed = await client.call_tool("kpi_inputs", {"kpis": ["quick_ratio"]})
            assert [c["name"] for c in needed.structured_content["result"]] == ["revenue"]

            evaluated = await client.call_tool(
                "evaluate_kpis",
                {
                    "kpis": ["net_revenue_retention"],
                    "data": "mrr.csv",
                    "period": "month",
                    "entity": "customer",
                },
            )
            assert not evaluated.is_error, text(evaluated)
            rows = evaluated.structured_content["rows"]
            # Jan 300 -> Feb: a 120 + b 150 of the 300 = 90 %; Feb 320 -> Mar: a 120 + c 60.
            assert [r["net_revenue_retention"] for r in rows] == [None, 90.0, 56.25]

            quarterly = await client.call_tool(
                "evaluate_kpis",
                {
                    "kpis": ["churned_revenue"],
                    "data": str(data / "mrr.csv"),
                    "period": "month",
                    "entity": "customer",
                    "by": ["segment"],
                    "engine": "duckdb",
                },
            )
            assert not quarterly.is_error, text(quarterly)
            assert quarterly.structured_content["row_count"] == len(
                quarterly.structured_content["rows"]
            )

            sql = await client.call_tool(
                "compile_sql",
                {
                    "kpis": ["nrr"],
                    "table": "billing.mrr",
                    "period": "month",
                    "entity": "customer",
                    "dialect": "snowflake",
                },
            )
            assert not sql.is_error and "billing" in text(sql) and "SELECT" in text(sql)

            explained = await client.call_tool(
                "explain_change",
                {
                    "kpi": "NRR",
                    "data": "mrr.csv",
                    "start": "2024-02",
                    "end": "2024-03",
                    "period": "month",
                    "entity": "customer",
                },
            )
            assert not explained.is_error, text(explained)
            drivers = [r for r in explained.structured_content["rows"] if r["depth"] == 1]
            # NRR went from 90 to 56.25; the drivers' shares add up to the whole change.
            assert sum(r["contribution"] for r in drivers) == pytest.approx(56.25 - 90.0)

            # Bad input: a tool error the assistant can read, and the server stays up.
            errors = {
                "unknown KPI": ("get_kpi", {"kpi": "no_such_kpi"}),
                "not a number": ("search_kpis", {"limit": "many"}),
                "missing column": (
                    "evaluate_kpis",
                    {
                        "kpis": ["quick_ratio"],
                        "data": "mrr.csv",
                        "period": "month",
                        "entity": "customer",
                        "columns": {"revenue": "mrr"},
                    },
                ),
                "no entity": (
                    "evaluate_kpis",
                    {"kpis": ["quick_ratio"], "data": "mrr.csv", "period": "month"},
                ),
                "misspelt column": (
                    "evaluate_kpis",
                    {
                        "kpis": ["quick_ratio"],
                        "data": "mrr.csv",
                        "period": "month",
                        "entity": "customer",
                        "columns": {"revenu": "x"},
                    },
                ),
                "no such file": ("evaluate_kpis", {"kpis": ["quick_ratio"], "data": "nope.csv"}),
                "dot dot": ("evaluate_kpis", {"kpis": ["nrr"], "data": "../elsewhere/mrr.csv"}),
                "absolute outside": (
                    "evaluate_kpis",
                    {"kpis": ["nrr"], "data": str(secret / "mrr.csv"), "period": "month"},
                ),
                "symlink outside": ("evaluate_kpis", {"kpis": ["nrr"], "data": "link.csv"}),
                "glob outside": (
                    "evaluate_kpis",
                    {"kpis": ["nrr"], "data": str(secret / "*.csv"), "engine": "duckdb"},
                ),
                "explain outside": (
                    "explain_change",
                    {
                        "kpi": "nrr",
                        "data": str(secret / "mrr.csv"),
                        "start": "2024-02",
                        "end": "2024-03",
                        "period": "month",
                    },
                ),
                "bad dialect": (
                    "compile_sql",
                    {"kpis": ["nrr"], "table": "t", "period": "month", "dialect": "oracle"},
                ),
            }
            messages = {}
            for label, (tool, arguments) in errors.items():
                result = await client.call_tool(tool, arguments)
                assert result.is_error, label
                messages[label] = text(result)
            assert "no_such_kpi" in messages["unknown KPI"]
            assert "revenu" in messages["misspelt column"]
            assert "'revenue' (mapped to 'mrr')" in messages["missing column"]
            assert '"columns": {"revenue": "<column>"}' in messages["missing column"]
            assert 'the "entity" argument' in messages["no entity"]
            for message in messages.values():  # the tools' arguments, not kpi's options
                assert not {"--entity", "--column", "--period", "usage:"} & set(message.split())
            for label in ("dot dot", "absolute outside", "symlink outside", "glob outside"):
                assert str(secret) not in messages[label] or "outside" in messages[label], label
                assert "secret" not in messages[label]
            # ... and answers again after all of them.
            again = await client.call_tool("search_kpis", {"text": "churn", "limit": 1})
            assert not again.is_error

    asyncio.run(asyncio.wait_for(session(), timeout=300))


def test_data_outside_the_roots_is_refused_before_reading(folders):
    """The path check is the server's own, not a side effect of a failed read."""
    from kpi_registry.mcp_server import KPIServer, ToolFailure

    data, secret = folders
    (data / "linked").symlink_to(secret, target_is_directory=True)
    service = KPIServer([data])
    assert service.data_path("mrr.csv") == str(data / "mrr.csv")
    assert service.data_path("m*.csv") == str(data / "m*.csv")
    outside = ("../elsewhere/mrr.csv", str(secret / "mrr.csv"), "link.csv", str(secret / "*"))
    # '**' matches through a linked folder when the files are read, so also when checked
    for bad in (*outside, "**/mrr.csv", "**/**/mrr.csv", "linked/*.csv"):
        with pytest.raises(ToolFailure, match="outside|not allowed"):
            service.data_path(bad)


def test_a_bad_cell_is_placed_at_its_csv_line_in_its_file(folders):
    """A cell an engine cannot read is placed from the error's fields, as `kpi eval` places
    it: at the CSV line (blank lines and quoted line breaks counted), in the file of a glob
    that holds it, at the row counted from 1 in a Parquet file; a number written with a
    thousands separator gets its hint from the value, whichever engine found it."""
    import pandas as pd

    from kpi_registry.mcp_server import KPIServer, ToolFailure

    data, _ = folders
    rows = MRR.splitlines(keepends=True)
    # line 6 is blank and the entity on lines 7-8 has a line break: the bad cell is on line 9
    bad = "".join(rows[:5]) + '\n"c\nd",2024-02,SMB,50\na,2024-03,SMB,"1,000"\n'
    (data / "bad.csv").write_text(bad)
    (data / "parts").mkdir()
    (data / "parts" / "a.csv").write_text(MRR)
    (data / "parts" / "b.csv").write_text(
        "customer,month,segment,revenue\nd,2024-01,SMB,1\n\n,2024-02,SMB,2\n"
    )
    pd.read_csv(data / "bad.csv", dtype=str).to_parquet(data / "bad.parquet")
    service = KPIServer([data])

    def failure(name: str, engine: str = "pandas") -> str:
        with pytest.raises(ToolFailure) as caught:
            service.evaluate(["nrr"], name, period="month", entity="customer", engine=engine)
        return str(caught.value)

    hint = " (write plain numbers such as 1234.5: no thousands separators, currency signs, "
    hint += "% or decimal commas)"
    assert failure("bad.csv") == (
        f"bad.csv:9: column 'revenue' must be numeric; it has '1,000'{hint}"
    )
    assert failure("bad.parquet") == (
        f"bad.parquet: column 'revenue' must be numeric; row 6 has '1,000'{hint}"
    )
    assert failure("parts/*.csv") == (
        f"{data / 'parts' / 'b.csv'}:4: entity column 'customer' is empty"
    )
    duckdb = failure("bad.csv", engine="duckdb")
    assert duckdb.startswith("bad.csv: a column could not be read as numbers")
    assert duckdb.endswith(hint)


ABSENCE = """employee,month,unplanned_absence_hours,scheduled_hours
ann,2024-01,4,160

bob,2024-01,-3,150
ann,2024-02,0,160
"""


def test_tools_call_the_registry_and_word_its_errors_from_their_fields(folders):
    """Calls the tools in a fresh interpreter: no part of the command line is loaded, and
    every error names the tools' arguments and the data file's line."""
    data, _ = folders
    (data / "absence.csv").write_text(ABSENCE)
    (data / "days.csv").write_text(MRR.replace("2024-01", "03/01/2024"))
    probe = """
import json, sys
from kpi_registry.mcp_server import KPIServer, ToolFailure
service = KPIServer([sys.argv[1]])
out = {"sql": service.sql(["nrr"], "billing.mrr", "month", entity="customer")}
out["rows"] = service.evaluate(["nrr"], "mrr.csv", period="month", entity="customer")["rows"]
out["explained"] = service.explain("nrr", "mrr.csv", "2024-02", "2024-03", "month",
                                   entity="customer")["rows"]
calls = {
    "invalid rows": ("evaluate", dict(kpis=["absenteeism_rate"], data="absence.csv",
                                      period="month", entity="employee")),
    "dropped": ("evaluate", dict(kpis=["absenteeism_rate"], data="absence.csv",
                                 period="month", entity="employee", drop_invalid=True)),
    "ambiguous date": ("evaluate", dict(kpis=["nrr"], data="days.csv", period="month",
                                        entity="customer")),
    "entity is the period": ("evaluate", dict(kpis=["nrr"], data="mrr.csv", period="month",
                                              entity="month")),
    "by twice": ("sql", dict(kpis=["nrr"], table="t", period="month", entity="customer",
                             by=["segment", "segment"])),
    "empty column": ("sql", dict(kpis=["nrr"], table="t", period="month",
                                 columns={"revenue": " "})),
    "bad table": ("sql", dict(kpis=["nrr"], table="t; drop table x", period="month")),
}
for label, (tool, arguments) in calls.items():
    try:
        result = getattr(service, tool)(**arguments)
        out[label] = result
    except ToolFailure as e:
        out[label] = "error: " + str(e)
out["cli loaded"] = sorted(m for m in sys.modules if m.startswith("kpi_registry.cli"))
print(json.dumps(out))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe, str(data)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["cli loaded"] == []
    cli = subprocess.run(
        [sys.executable, "-m", "kpi_registry.cli", "sql", "nrr", "--table", "billing.mrr"]
        + ["--period", "month", "--entity", "customer"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert out["sql"] == cli.stdout  # the same statement as `kpi sql`
    assert [r["net_revenue_retention"] for r in out["rows"]] == [None, 90.0, 56.25]
    drivers = [r for r in out["explained"] if r["depth"] == 1]
    assert sum(r["contribution"] for r in drivers) == pytest.approx(56.25 - 90.0)
    # bob's -3 hours is on line 4 of the file (a blank line before it), not "row 1"
    assert out["invalid rows"].startswith("error: absence.csv: ")
    assert "line 4 has -3" in out["invalid rows"]
    assert any("-3" in w for w in out["dropped"]["warnings"])
    assert out["ambiguous date"].startswith("error: days.csv:2: period column 'month'")
    assert '"date_format"' in out["ambiguous date"]
    assert out["entity is the period"].startswith("error: \"entity\": 'month' is the period")
    assert out["by twice"].startswith("error: \"by\": 'segment' is given twice")
    assert "give a datapoint and a column name" in out["empty column"]
    assert out["bad table"].startswith("error: table 't; drop table x' is not a table name")


def test_kpi_mcp_starts_without_the_command_line_only_in_its_plain_form():
    from kpi_registry.__main__ import mcp_folders

    assert mcp_folders([]) == ([], [])
    assert mcp_folders(["--root", "a", "--path=p", "--root=b"]) == (["a", "b"], ["p"])
    # everything else is the command line's to parse and report (kpi_registry.cli.mcp)
    for args in (["--help"], ["--ro", "a"], ["--root"], ["--root", "--path", "p"], ["x"]):
        assert mcp_folders(args) is None, args
    wrong = subprocess.run(
        [sys.executable, "-m", "kpi_registry", "mcp", "--root"],
        input="",
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert wrong.returncode == 2 and "usage: kpi mcp" in wrong.stderr and "--root" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_start_up_imports_no_engine_and_answers_tools_list(tmp_path):
    """tools/list is answered without pandas, DuckDB or the library loaded; we measure the
    time from start to the answer (the figure is printed; the MCP SDK's own import is most
    of it) and require the server to stay light."""
    probe = (
        "import sys, runpy; sys.argv = ['kpi', 'mcp'];"
        "import atexit; atexit.register(lambda: sys.stderr.write('HEAVY:' + ','.join("
        "m for m in ('pandas', 'duckdb', 'numpy', 'sqlglot', 'kpi_registry.registry') "
        "if m in sys.modules) + '\\n'));"
        "runpy.run_module('kpi_registry', run_name='__main__')"
    )
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", probe],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=_env(),
        text=True,
    )
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        answer = None
        while answer is None:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            reply = json.loads(line)
            if reply.get("id") == 2:
                answer = reply
        elapsed = time.perf_counter() - started
        proc.stdin.close()
        proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert {t["name"] for t in answer["result"]["tools"]} == TOOLS
    assert "HEAVY:\n" in err, err[-500:]
    print(f"tools/list answered {elapsed:.2f} s after start")
    assert elapsed < 30  # a hang or a heavy import, not the exact figure (shared CI machines)


def test_a_root_that_is_not_a_folder_stops_the_server_with_a_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kpi_registry", "mcp", "--root", str(tmp_path / "nope")],
        input="",
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert result.returncode == 1
    assert "nope: no such folder" in result.stderr and "Traceback" not in result.stderr


# -- the fast start: the handshake answered while the SDK loads ---------------------------------
#: Holds back `import mcp` in the server until the test has its tools/list, then reports which
#: heavy modules were loaded by then; proves the answer came before the SDK, with no timing.
HELD_BACK_SDK = """
import os, sys, time, runpy, threading
HEAVY = ("mcp", "pydantic", "anyio", "pandas", "numpy", "duckdb", "sqlglot", "yaml",
         "kpi_registry.registry", "kpi_registry.cli")
class HoldBack:
    def find_spec(self, name, path=None, target=None):
        # the import itself, in the server's loading thread (a mere lookup of where the
        # SDK is installed, on the main thread, passes)
        if name == "mcp" and threading.current_thread() is not threading.main_thread():
            sys.stderr.write("SDK-WAITING\\n"); sys.stderr.flush()
            while not os.path.exists(os.environ["RELEASE_SDK"]):
                time.sleep(0.02)
            loaded = [m for m in HEAVY if m in sys.modules]
            sys.stderr.write("LOADED-BEFORE-SDK:" + ",".join(loaded) + "\\n"); sys.stderr.flush()
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, HoldBack())
sys.argv = ["kpi", "mcp"]
runpy.run_module("kpi_registry", run_name="__main__")
"""

DISCOVER_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
FLOWS = {
    "handshake": [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ],
    "stateless": [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "server/discover",
            "params": {"_meta": DISCOVER_META},
        },
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": DISCOVER_META}},
    ],
}


def _call(flow: str) -> dict:
    params = {"name": "kpi_inputs", "arguments": {"kpis": ["quick_ratio"]}}
    if flow == "stateless":
        params["_meta"] = DISCOVER_META
    return {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}


def _read_reply(proc, request_id) -> dict:
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        reply = json.loads(line)
        if reply.get("id") == request_id:
            return reply


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        text=True,
    )


def _send(proc, messages) -> None:
    for message in messages:
        proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_tools_list_is_answered_before_the_sdk_loads(tmp_path, flow):
    """The first start answers through the SDK and keeps its answers; a later start gives
    the very same answers before `import mcp` has run (and without pandas, the library or
    the command line), then the SDK takes over the session and serves a tool call."""
    env = {**_env(), "KPI_REGISTRY_CACHE": str(tmp_path / "cache")}
    from kpi_registry.mcp_server import answers_file

    first = _start(["-m", "kpi_registry", "mcp"], env, tmp_path)
    try:
        _send(first, FLOWS[flow])
        sdk_answers = [_read_reply(first, 1), _read_reply(first, 2)]
        _send(first, [_call(flow)])
        assert "result" in _read_reply(first, 3)
    finally:
        first.stdin.close()
        first.wait(timeout=120)
    assert (tmp_path / "cache" / answers_file().name).is_file()  # kept for the next start

    release = tmp_path / "release-sdk"
    held = _start(["-c", HELD_BACK_SDK], {**env, "RELEASE_SDK": str(release)}, tmp_path)
    try:
        _send(held, FLOWS[flow])
        fast_answers = [_read_reply(held, 1), _read_reply(held, 2)]
        release.touch()
        _send(held, [_call(flow)])
        called = _read_reply(held, 3)
    finally:
        release.touch()
        held.stdin.close()
        held.wait(timeout=120)
        err = held.stderr.read()
    assert fast_answers == sdk_answers
    assert {t["name"] for t in fast_answers[1]["result"]["tools"]} == TOOLS
    assert "SDK-WAITING" in err
    assert "LOADED-BEFORE-SDK:\n" in err, err[-2000:]
    # the SDK, not the cache, answered the call: it saw the session's first messages
    assert not called["result"].get("isError"), called
    assert "revenue" in json.dumps(called["result"])
    assert held.returncode == 0, err[-2000:]


def test_a_client_leaving_during_the_fast_start_ends_the_server_cleanly(tmp_path):
    """End of input while the SDK is still loading: the server waits for the load and exits
    with 0 (an interpreter shutting down under a thread loading extensions aborts)."""
    env = {**_env(), "KPI_REGISTRY_CACHE": str(tmp_path / "cache")}
    first = _start(["-m", "kpi_registry", "mcp"], env, tmp_path)
    _send(first, FLOWS["handshake"])
    _read_reply(first, 2)
    first.stdin.close()
    assert first.wait(timeout=120) == 0
    release = tmp_path / "release-sdk"
    held = _start(["-c", HELD_BACK_SDK], {**env, "RELEASE_SDK": str(release)}, tmp_path)
    try:
        _send(held, FLOWS["handshake"])
        assert {t["name"] for t in _read_reply(held, 2)["result"]["tools"]} == TOOLS
        held.stdin.close()
        with pytest.raises(subprocess.TimeoutExpired):
            held.wait(timeout=1)  # still loading the SDK, so still running
    finally:
        release.touch()
    assert held.wait(timeout=120) == 0
    assert "LOADED-BEFORE-SDK:\n" in held.stderr.read()
