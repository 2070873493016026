"""The user's data files as `kpi eval` and `kpi sql` read them: checked before either engine
reads them, and errors placed at the file's line, with hints for the usual export mistakes."""

from __future__ import annotations

import csv
import glob
import gzip
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import CellError, DataError, KPIError

DATA_KINDS = {".csv": "csv", ".csv.gz": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet"}
_GLOB = re.compile(r"[*?\[]")


@dataclass
class DataFile:
    """One data file as `kpi eval` reads it: its kind and, for CSV, its separator."""

    path: Path
    kind: str  # "csv" or "parquet"
    sep: str = ","

    def open_text(self):
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        return opener(self.path, "rt", encoding="utf-8-sig", newline="")

    def open_bytes(self):
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        return opener(self.path, "rb")


def data_kind(path: str | Path) -> str | None:
    name = str(path).lower()
    return next((kind for end, kind in DATA_KINDS.items() if name.endswith(end)), None)


def check_data_file(path: str | Path) -> DataFile:
    """A data file that exists, has a known kind and a header naming each column once.

    Both engines read the file; this check comes first so that an empty file, a header that
    is not UTF-8 or a column named twice (pandas would read the second as 'mrr.1', DuckDB
    one of the two, both without a word) is an error that names the file and the line.
    """
    p = Path(path)
    if p.is_dir():
        raise KPIError(f"data file {str(path)!r} is a folder; give a .csv or .parquet file")
    if not p.is_file():
        raise KPIError(f"data file {str(path)!r} not found")
    kind = data_kind(p)
    if kind is None:
        raise KPIError(f"data file {str(path)!r}: use .csv or .parquet")
    data = DataFile(p, kind)
    if kind == "parquet":
        _check_parquet_columns(data)
    else:
        _check_csv_header(data)
    return data


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _check_parquet_columns(data: DataFile) -> None:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(data.path).names
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise KPIError(f"cannot read {data.path}: {_first_line(e)}") from None
    _refuse_repeated_columns(data, names, "in the file")


def _check_csv_header(data: DataFile) -> None:
    line, raw = 0, b""
    try:
        with data.open_bytes() as f:
            for raw in f:  # the header is the first line that is not blank, as for pandas
                line += 1
                if raw.strip():
                    break
    except OSError as e:  # also a .gz file that is not gzip
        raise KPIError(f"cannot read {data.path}: {e.strerror or _first_line(e)}") from None
    if not raw.strip():
        raise DataError(
            f"{data.path}: the file is empty; a CSV file starts with a line naming its columns"
        )
    try:
        header = raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise DataError(_not_utf8(data.path, line, raw, e)) from None
    if data.path.name.lower().endswith(".tsv"):
        data.sep = "\t"
    elif "," not in header:
        # Excel writes ';' where the decimal mark is a comma; DuckDB detects it, so do we.
        counts = {sep: header.count(sep) for sep in ";\t|"}
        best = max(counts, key=lambda sep: counts[sep])
        data.sep = best if counts[best] else ","
    names = next(csv.reader([header.rstrip("\r\n")], delimiter=data.sep))
    _refuse_repeated_columns(data, names, "in the header", line)


def _refuse_repeated_columns(data: DataFile, names: list[str], where: str, line: int = 0) -> None:
    first: dict[str, int] = {}
    for n, name in enumerate(names, 1):
        if name and name in first:
            at = f"{data.path}:{line}" if line else str(data.path)
            raise DataError(
                f"{at}: column {name!r} is {where} twice (columns {first[name]} and {n}); "
                "rename one of them"
            )
        first.setdefault(name, n)


def _not_utf8(path: Path, line: int, raw: bytes, error: UnicodeDecodeError) -> str:
    bad = raw[error.start : error.start + 1].hex()
    return (
        f"{path}:{line}: not valid UTF-8 (byte 0x{bad} at column {error.start + 1}); "
        "save the file as UTF-8 (in Excel: 'CSV UTF-8')"
    )


def find_not_utf8(data: DataFile) -> str:
    """The message for the first line of a file that is not UTF-8."""
    with data.open_bytes() as f:
        for line, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return _not_utf8(data.path, line, raw, e)
    return f"cannot read {data.path}: not valid UTF-8; save the file as UTF-8"


def csv_line(data: DataFile, row: int) -> int | None:
    """The line of the file where data row ``row`` (0-based, as pandas counts) starts: blank
    lines and quoted line breaks make the two differ."""
    try:
        with data.open_text() as f:
            reader = csv.reader(f, delimiter=data.sep)
            start, n = 1, -2  # -2: the header comes first
            for record in reader:
                if record:
                    n += 1
                    if n == row:
                        return start
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return None


_CSV_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_CSV_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def _csv_problem(data: DataFile, error: Exception) -> str:
    """A CSV file pandas' tokenizer refused, placed at its line.

    This reads a third party's message, not ours: pandas' ParserError carries no field with
    the line or the field counts (pandas 3.1), only its text ("Expected 3 fields in line 4,
    saw 4", "EOF inside string starting at row 2"). Where the wording differs, the error
    keeps pandas' own text."""
    text = str(error).strip()
    if m := _CSV_FIELDS.search(text):
        expected, line, saw = m.groups()
        return (
            f"{data.path}:{line}: {saw} fields where the header has {expected}; "
            "check the separators and quotes on that line"
        )
    if m := _CSV_QUOTE.search(text):
        line = int(m.group(1)) + 1  # pandas counts this row from 0, the header included
        return f"{data.path}:{line}: a quoted field starts here and is never closed"
    return f"cannot read {data.path}: {text.removeprefix('Error tokenizing data. C error: ')}"


def read_data(data: DataFile):
    """The rows of a checked data file as a DataFrame, numbered 0, 1, ... in file order."""
    import pandas as pd

    try:
        if data.kind == "parquet":
            frame = pd.read_parquet(data.path)
            # an index with a name was a column when written (DuckDB reads it as one)
            named = any(name is not None for name in frame.index.names)
            return frame.reset_index(drop=not named)
        return pd.read_csv(data.path, sep=data.sep, encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(find_not_utf8(data)) from None
    except pd.errors.ParserError as e:
        raise DataError(_csv_problem(data, e)) from None
    except Exception as e:  # pandas and pyarrow raise many types for a malformed file
        raise KPIError(f"cannot read {data.path}: {_first_line(e)}") from None


def cell_message(error: CellError, checked: list[DataFile], sizes: list[int], where: str) -> str:
    """A cell error as the front ends report it, from its fields: the file first (of several
    read as one, the one the row is in), at the line of the row for CSV or with the row
    counted from 1 for Parquet, plus a hint for the usual export mistakes. ``checked`` are
    the files whose rows the engine saw in list order (empty when it saw no file rows: the
    row is then shown as the engine named it); ``sizes`` their row counts."""
    placed = _file_row(checked, sizes, error.row)
    if placed is None:
        return f"{where}: {error}{value_hint(error)}"
    data, row = placed
    name = str(data.path) if len(checked) > 1 else where
    line = csv_line(data, row) if data.kind == "csv" else None
    if line is not None:
        return f"{name}:{line}: {error.render(None)}{value_hint(error)}"
    return f"{name}: {error.render(row + 1)}{value_hint(error)}"  # as a person counts rows


def _file_row(checked: list[DataFile], sizes: list[int], row) -> tuple[DataFile, int] | None:
    """The file a row of the data read from ``checked`` is in (the row counted from 0 across
    the files, in list order) and the row counted within that file; None when the row is not
    such a count."""
    if not checked or isinstance(row, bool) or not isinstance(row, numbers.Integral):
        return None
    n = int(row)
    if len(checked) == 1:
        return checked[0], n
    for data, size in zip(checked, sizes):
        if 0 <= n < size:
            return data, n
        n -= size
    return None


_NOT_PLAIN_NUMBER = frozenset(",$€£¥%")


def value_hint(error: Exception) -> str:
    """A hint for a value the usual export mistakes produce, read from the error's value:
    a number written with separators or a currency sign, a date as an Excel serial number."""
    from .errors import ConversionError

    numeric = isinstance(error, ConversionError) or (
        isinstance(error, CellError) and error.problem == "not_numeric"
    )
    value = getattr(error, "value", None)
    if not isinstance(value, str):
        return ""
    if numeric and any(c in _NOT_PLAIN_NUMBER or c.isspace() for c in value):
        return (
            " (write plain numbers such as 1234.5: no thousands separators, currency signs, "
            "% or decimal commas)"
        )
    if (
        isinstance(error, CellError)
        and error.problem == "unparsable_period"
        and len(value) == 5
        and value.isascii()
        and value.isdigit()
        and 20000 <= int(value) <= 80000
    ):
        return (
            " (an Excel date serial number? format the column as dates, e.g. 2024-03, "
            "before exporting)"
        )
    return ""


def expand_data_path(pattern: str) -> list[Path]:
    """The files a data path names: the path itself, or the files its glob matches.

    The glob is expanded here, once, with Python's rule (a name starting with '.' matches only
    a pattern part that starts with '.'; '**' crosses folders), and every engine is handed this
    list: DuckDB's own globbing also reads hidden files, so the engines would see other rows.
    """
    if not _GLOB.search(pattern):
        return [Path(pattern)]
    return [Path(m) for m in sorted(glob.glob(pattern, recursive=True)) if Path(m).is_file()]


def check_inputs(pattern: str) -> list[DataFile]:
    """Each file a path or glob names, checked; files that engines can read as one table (one
    kind, one separator, the same columns)."""
    if not _GLOB.search(pattern):
        return [check_data_file(pattern)]
    matches = expand_data_path(pattern)
    if not matches:
        raise KPIError(f"no file matches {pattern!r}")
    checked = [check_data_file(match) for match in matches]
    first = checked[0]
    for data in checked[1:]:
        if data.kind != first.kind:
            raise KPIError(
                f"{pattern!r} matches both CSV and Parquet files ({first.path} and {data.path}); "
                "give a glob of one kind"
            )
        if data.sep != first.sep:
            raise DataError(
                f"{data.path}: separated by {data.sep!r} where {first.path} uses "
                f"{first.sep!r}; the files of one glob are read as one table"
            )
        if column_names(data) != column_names(first):
            raise DataError(
                f"{data.path}: columns {column_names(data)} differ from {first.path}'s "
                f"{column_names(first)}; the files of one glob are read as one table"
            )
    return checked


def read_for_engine(pattern: str, engine: str):
    """(checked files, data for the engine, row counts per file) from a data path or glob, as
    every front end reads it: the glob is expanded once, so both engines read the same list;
    DuckDB reads the files itself, without going through pandas (no row counts then)."""
    checked = check_inputs(pattern)
    if engine == "duckdb":
        return checked, ([str(c.path) for c in checked] if len(checked) > 1 else pattern), []
    data, sizes = read_all(checked)
    return checked, data, sizes


def column_names(data: DataFile) -> list[str]:
    """The columns a checked file has, in file order."""
    if data.kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(data.path).names)
    with data.open_text() as f:
        for row in csv.reader(f, delimiter=data.sep):
            if row:
                return row
    return []


def read_all(checked: list[DataFile]):
    """The rows of several checked files as one DataFrame, in list order (DuckDB reads the
    same list in the same order), numbered 0, 1, ... across the files; and each file's count
    of rows."""
    import pandas as pd

    frames = [read_data(data) for data in checked]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, [len(f) for f in frames]


def _first_place(checked: list[DataFile], column: str, wanted) -> tuple[str, str] | None:
    """The first cell of a column, in file order, for which ``wanted(text)`` holds, and where
    it is: file:line for CSV, the file and row (from 1) for Parquet. None when there is no
    such cell or it cannot be found (a column mapped away, a file unreadable)."""
    for data in checked:
        try:
            if data.kind == "parquet":
                import pyarrow.parquet as pq

                cells = pq.read_table(data.path, columns=[column]).column(column).to_pylist()
                for n, cell in enumerate(cells):
                    if isinstance(cell, str) and wanted(cell):
                        return cell, f"{data.path}: row {n + 1}"
                continue
            with data.open_text() as f:
                reader = csv.reader(f, delimiter=data.sep)
                at, start = None, 1
                for record in reader:
                    if record:
                        if at is None:
                            at = record.index(column) if column in record else -1
                            if at < 0:
                                break
                        elif at < len(record) and wanted(record[at]):
                            return record[at], f"{data.path}:{start}"
                    start = reader.line_num + 1
        except Exception:  # noqa: BLE001 - the place is a courtesy; the message stands without it
            continue
    return None


def date_message(error, checked: list[DataFile], where: str) -> str:
    """An ambiguous or unmatched text date (periods.AmbiguousDateError, DateFormatError) as
    the command reports it: the first such date in file order (the same whichever engine
    found one), at its file and line, in options."""
    from .periods import DateFormatError, is_day_or_month_first, matches_date_format

    if isinstance(error, DateFormatError):
        found = _first_place(
            checked, error.column, lambda text: not matches_date_format(text, error.date_format)
        )
        value, place = found or (error.value, where)
        return (
            f"{place}: period column {error.column!r} has {value!r}, which does not match "
            f"--date-format {error.date_format}"
        )
    value, place = _first_place(checked, error.column, is_day_or_month_first) or (
        error.value,
        where,
    )
    return (
        f"{place}: period column {error.column!r} has {value!r}: a date written "
        "day-first or month-first is ambiguous (03/04/2024 is 3 April or March 4); "
        "give its format: --date-format %d/%m/%Y (day first) or %m/%d/%Y (month first)"
    )
