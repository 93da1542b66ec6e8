"""Batches (seed 004): one template rendered once per row of a table, every row
checked before anything is queued.

A batch names what its rows share (the project, the nexrender template and its
fixed assets), what each column changes (``columns``: a nexrender asset
without its value), the table (``rows``, a list of objects, or ``csv``) and
how outputs are named (``output_name``, e.g. ``"{title}-{row}"``).

``clean_batch`` checks the request as a whole and raises ``InvalidInput`` with
field errors (a bad project path, an unreadable CSV, a column that is not in
the table). ``check_rows`` then checks each row with the rules of a single job
(the nexrender whitelist, which also refuses values that would break the
generated ExtendScript; paths inside Dropbox) plus what only a table gets
wrong: unknown or missing columns, media files that are not in Dropbox, and
output names that repeat. ``plan_batch`` turns the checked rows into what
``jobs.lifecycle.submit_batch`` creates.

Mapped layers are compared with the composition's real layers when a reader
of the project file is given (``read_layers``; jobs.node.layers reads .aep
files as the preflight does).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobs.lifecycle import BatchRowPlan
from jobs.models import Engine
from jobs.submission.errors import InvalidInput, body_fields, is_number, take
from jobs.submission.nexrender_spec import (
    MAX_ASSETS,
    clean_asset,
    clean_column,
    clean_nexrender_config,
)
from jobs.submission.paths import PathError, ResolvedPath, resolve_project_path, resolve_source_file
from jobs.submission.presets import clean_preset
from jobs.submission.shared import clean_callback_url, clean_name, clean_saved_at, find_mac_user

MAX_ROWS = 1000
MAX_COLUMNS = 100
MAX_COLUMN_CHARS = 100
MAX_PATTERN_CHARS = 500
MAX_OUTPUT_NAME = 120
DEFAULT_OUTPUT_NAME = "row-{row}"
ROW = "row"  # the placeholder for the 1-based row number
ACCEPT = ("all", "valid")
ROW_PROBLEM = "non_field_errors"
FIELDS = {"name", "project_path", "saved_at", "mac_username", "nexrender", "columns", "rows",
          "csv", "output_name", "review", "dry_run", "accept", "preset", "callback_url"}
REFUSED = {"priority": "Not accepted: priority is set by admins.",
           "engine": "Batches render with nexrender (columns replace nexrender assets)."}
MEDIA_EXISTS_NOTE = "File not found in Dropbox: {path}"

# A reader of the project file: (project path, composition) -> the layer names of the
# composition and of the compositions nested in it, by composition name; a text
# when the project has no such composition; None when it cannot tell
# (jobs.node.layers reads .aep files with the preflight's reader).
LayerReader = Callable[[str, str], "dict[str, list[str]] | str | None"]

# Characters Windows refuses in file names, and control characters.
_FILE_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f\u2028\u2029]+')
_WINDOWS_DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³])$",
                             re.IGNORECASE)
_PATTERN_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# --- Output names -----------------------------------------------------------------


def safe_output_name(text: str) -> str:
    """``text`` as a file name that is safe on Windows, macOS and in Dropbox
    (letters of any script are kept); "" if nothing usable is left."""
    name = _FILE_UNSAFE.sub("_", text)
    name = re.sub(r"\s+", " ", name).strip(" .")
    name = name[:MAX_OUTPUT_NAME].rstrip(" .")
    if name and _WINDOWS_DEVICE.match(name.split(".")[0].strip()):
        name = f"_{name}"[:MAX_OUTPUT_NAME]
    return name


def batch_folder(name: str, batch_id: uuid.UUID) -> str:
    """The folder under RENDER_OUTPUT_DIR a batch's outputs are published into."""
    return f"{safe_output_name(name)[:80].rstrip(' .') or 'batch'}_{batch_id.hex[:8]}"


@dataclass
class OutputPattern:
    """``output_name``: text with ``{column}`` and ``{row}`` placeholders (``{{`` is a brace)."""

    text: str
    parts: list  # str (literal) or ("column name",)
    columns: set[str]

    def render(self, values: dict, number: int) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part[0] == ROW:
                out.append(str(number))
            else:
                out.append(_text(values.get(part[0])))
        return "".join(out)


def parse_output_pattern(text) -> OutputPattern:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(["Must be a text like \"{title}-{row}\"."])
    if len(text) > MAX_PATTERN_CHARS:
        raise InvalidInput([f"Must be at most {MAX_PATTERN_CHARS} characters."])
    parts: list = []
    columns: set[str] = set()
    for match in _PATTERN_TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif token in ("{", "}"):
            raise InvalidInput([f"Unmatched '{token}': write '{token}{token}' for a brace."])
        elif match.group(1) is not None:
            name = match.group(1).strip()
            if not name:
                raise InvalidInput(["Empty placeholder '{}': name a column, or {row}."])
            parts.append((name,))
            if name != ROW:
                columns.add(name)
        else:
            parts.append(token)
    return OutputPattern(text, parts, columns)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    return str(value)


# --- The table -----------------------------------------------------------------------


@dataclass
class Table:
    rows: list  # (1-based data row number, the row as given)
    headers: list[str] | None = None  # a CSV's header; None for JSON rows

    @property
    def from_csv(self) -> bool:
        return self.headers is not None


def _records(text) -> list[list[str]]:
    """The non-blank records of a CSV text (UTF-8 with or without BOM, comma or
    semicolon separated, as the header line shows); InvalidInput if unreadable."""
    if not isinstance(text, str):
        raise InvalidInput(["Must be the CSV file's text."])
    text = text.removeprefix("\ufeff")
    header_line = next((line for line in text.splitlines() if line.strip()), None)
    if header_line is None:
        raise InvalidInput(["The CSV is empty: it needs a header line and at least one row."])
    # The header decides the separator: spreadsheets in many locales write ';'.
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        return [record for record in reader if any(cell.strip() for cell in record)]
    except csv.Error as exc:
        raise InvalidInput([f"Cannot read the CSV (line {reader.line_num}): {exc}."]) from None


def parse_csv(text) -> Table:
    """A CSV text as rows keyed by the trimmed header names. Blank lines are not
    data rows."""
    records = _records(text)
    headers = [cell.strip() for cell in records[0]]
    problems = []
    if any(not name for name in headers):
        problems.append("Every column needs a name in the header line (one is empty).")
    seen: dict[str, str] = {}
    for name in headers:
        if name and name.casefold() in seen:
            problems.append(f"The column {name!r} appears twice in the header line.")
        seen.setdefault(name.casefold(), name)
    if problems:
        raise InvalidInput(problems)
    rows = []
    for number, record in enumerate(records[1:], start=1):
        row = dict(zip(headers, record, strict=False))
        if len(record) > len(headers):
            row[None] = record[len(headers):]  # reported by check_rows
        rows.append((number, row))
    return Table(rows, headers)


def drop_csv_columns(text, names: set[str]) -> str:
    """The CSV without the columns ``names`` (by trimmed header name), comma separated.
    Cells past the header's end stay, so such rows are still reported."""
    records = _records(text)
    keep = [i for i, name in enumerate(records[0]) if name.strip() not in names]
    width = len(records[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for record in records:
        writer.writerow([record[i] for i in keep if i < len(record)] + record[width:])
    return out.getvalue()


def cell_value(text: str, prop: str):
    """A CSV cell for a data column: text for a text layer; for other properties
    a number, a list of numbers ("[960, 540]") or true/false when it reads as one."""
    if prop.strip().casefold() == "source text":
        return text
    stripped = text.strip()
    if _NUMBER.match(stripped):
        number = float(stripped)
        return int(number) if number.is_integer() and "." not in stripped \
            and "e" not in stripped.lower() else number
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return text
        if isinstance(parsed, list) and parsed and all(is_number(n) for n in parsed):
            return parsed
    return text


# --- The request --------------------------------------------------------------------


@dataclass
class BatchRequest:
    name: str
    project_path: str  # as submitted
    resolved: ResolvedPath
    saved_at: object  # datetime or None
    mac_username: str
    user: object
    nexrender: dict  # the cleaned template and the assets every row shares
    columns: dict
    pattern: OutputPattern
    table: Table
    review: bool = False
    dry_run: bool = False
    accept: str = "all"
    preset: dict = field(default_factory=dict)
    callback_url: str = ""

    @property
    def composition(self) -> str:
        return self.nexrender["template"]["composition"]


def _bool(errors: dict, data: dict, key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        errors[key] = ["Must be true or false."]
        return False
    return value


def _clean_columns(errors: dict, value) -> dict:
    if not isinstance(value, dict) or not value:
        errors["columns"] = ["Must be an object: each column of the table and the nexrender "
                             "asset it fills, e.g. {\"title\": {\"type\": \"data\", "
                             "\"layerName\": \"Title\", \"property\": \"Source Text\"}}."]
        return {}
    if len(value) > MAX_COLUMNS:
        errors["columns"] = [f"At most {MAX_COLUMNS} columns."]
        return {}
    found: dict[str, list[str]] = {}
    cleaned = {}
    for name, definition in value.items():
        if not name.strip() or len(name) > MAX_COLUMN_CHARS or name != name.strip():
            found.setdefault(name, []).append(
                f"Column names are the table's header names: 1 to {MAX_COLUMN_CHARS} "
                "characters, without spaces around them.")
            continue
        if name == ROW:
            found.setdefault(name, []).append(
                "'row' is the row number in output_name; rename this column.")
            continue
        try:
            cleaned[name] = clean_column(definition, name)
        except InvalidInput as exc:
            for where, messages in exc.errors.items():
                found.setdefault(where, []).extend(messages)
    if found:
        errors["columns"] = found
    return cleaned


def _clean_table(errors: dict, data: dict) -> Table | None:
    if ("rows" in data) == ("csv" in data):
        errors["rows"] = ["Give the table as either 'rows' (a list of objects) or 'csv' "
                          "(the file's text), not both."
                          if "rows" in data else "Give the table: 'rows' or 'csv'."]
        return None
    if "csv" in data:
        table = take(errors, "csv", parse_csv, data["csv"])
        where = "csv"
    else:
        rows = data["rows"]
        if not isinstance(rows, list):
            errors["rows"] = ["Must be a list of objects, one per row: {column: value}."]
            return None
        table = Table(list(enumerate(rows, start=1)))
        where = "rows"
    if table is None:
        return None
    if not table.rows:
        errors[where] = ["The table has no rows."]
        return None
    if len(table.rows) > MAX_ROWS:
        errors[where] = [f"At most {MAX_ROWS} rows per batch; split the table."]
        return None
    return table


def _check_header(errors: dict, table: Table, columns: dict, pattern: OutputPattern) -> None:
    """A CSV's columns against the mapping: every header is used, every use is a header."""
    headers = set(table.headers)
    problems = []
    for name in table.headers:
        if name not in columns and name not in pattern.columns:
            problems.append(f"The column {name!r} is neither mapped in 'columns' nor used in "
                            "output_name: map it, or remove it from the file.")
    for name in columns:
        if name not in headers:
            problems.append(f"The column {name!r} (mapped in 'columns') is missing from the "
                            "header line.")
    for name in sorted(pattern.columns - set(columns)):
        if name not in headers:
            problems.append(f"output_name uses {{{name}}}, which is not a column of the file.")
    if problems:
        errors.setdefault("csv", []).extend(problems)


def _check_layers(errors: dict, columns: dict, read_layers: LayerReader, project: str,
                  composition: str) -> None:
    """Mapped layers the composition (or the compositions nested in it) does not have,
    when the project can be read. nexrender looks for a column's layer in the
    column's own ``composition`` if it names one, else in every composition."""
    found = read_layers(project, composition)
    if found is None:
        return
    if isinstance(found, str):
        errors["nexrender"] = {"template.composition": [found]}
        return
    problems: dict[str, list[str]] = {}
    where_all = f"the composition {composition!r} or the compositions nested in it"
    for name, column in columns.items():
        target = column.get("composition")
        if target is not None:
            # "Main->Intro" names Intro nested in Main.
            comp = target.split("->")[-1]
            if comp not in found:
                problems[f"{name}.composition"] = [
                    f"{comp!r} is not {composition!r} nor a composition nested in it."]
                continue
            searched, where = [found[comp]], f"the composition {comp!r}"
        else:
            searched, where = list(found.values()), where_all
        layer, index = column.get("layerName"), column.get("layerIndex")
        if layer is not None and not any(layer in layers for layers in searched):
            problems[f"{name}.layerName"] = [f"No layer named {layer!r} in {where}."]
        if index is not None and not any(len(layers) >= index for layers in searched):
            problems[f"{name}.layerIndex"] = [f"No layer {index} in {where}."]
    if problems:
        errors["columns"] = problems


def clean_batch(data, *, session_user=None, read_layers: LayerReader | None = None
                ) -> BatchRequest:
    """The batch request as a whole, checked; InvalidInput with every problem by field.

    ``session_user``: a signed-in person (the dashboard, or the API with a
    session) rather than an API client: ``mac_username`` and ``saved_at`` may
    be left out, and a user may only name their own macOS username.
    """
    errors = body_fields(data, sorted(FIELDS), REFUSED)

    resolved = None
    if "project_path" not in data:
        errors["project_path"] = ["This field is required."]
    else:
        try:
            resolved = resolve_project_path(data["project_path"])
        except PathError as exc:
            errors["project_path"] = [exc.message]
    saved_at = None
    if data.get("saved_at") is not None:
        saved_at = take(errors, "saved_at", clean_saved_at, data["saved_at"])
    elif session_user is None:
        errors["saved_at"] = ["This field is required."]
    mac_username, user = "", session_user
    if data.get("mac_username") not in (None, ""):
        found = take(errors, "mac_username", find_mac_user, data["mac_username"])
        if found is not None:
            mac_username, user = found
            if session_user is not None and user != session_user \
                    and not getattr(session_user, "is_admin", False):
                errors["mac_username"] = ["This macOS username belongs to someone else."]
    elif session_user is None:
        errors["mac_username"] = ["This field is required."]

    nexrender = None
    if "nexrender" not in data:
        errors["nexrender"] = ["This field is required."]
    else:
        nexrender = take(errors, "nexrender", clean_nexrender_config, data["nexrender"])
    columns = _clean_columns(errors, data.get("columns"))
    if nexrender and columns and len(nexrender["assets"]) + len(columns) > MAX_ASSETS:
        errors["columns"] = [f"The fixed assets and the columns may fill at most {MAX_ASSETS} "
                             "assets together."]
    pattern = take(errors, "output_name", parse_output_pattern,
                    data.get("output_name", DEFAULT_OUTPUT_NAME))
    table = _clean_table(errors, data)
    if table is not None and table.from_csv and columns and pattern is not None:
        _check_header(errors, table, columns, pattern)
    if read_layers is not None and resolved is not None and nexrender and columns \
            and "columns" not in errors:
        _check_layers(errors, columns, read_layers, resolved.path,
                      nexrender["template"]["composition"])

    accept = data.get("accept", "all")
    if accept not in ACCEPT:
        errors["accept"] = ["Must be \"all\" (refuse the batch if any row is bad) or "
                            "\"valid\" (queue the good rows, skip the bad ones)."]
    review, dry_run = _bool(errors, data, "review"), _bool(errors, data, "dry_run")
    name = take(errors, "name", clean_name, data.get("name", "")) or ""
    preset = take(errors, "preset", clean_preset, data.get("preset")) or {}
    callback_url = take(errors, "callback_url", clean_callback_url,
                         data.get("callback_url", "")) or ""
    if errors:
        raise InvalidInput(errors)
    return BatchRequest(name=name, project_path=data["project_path"], resolved=resolved,
                        saved_at=saved_at, mac_username=mac_username, user=user,
                        nexrender=nexrender, columns=columns, pattern=pattern, table=table,
                        review=review, dry_run=dry_run, accept=accept, preset=preset,
                        callback_url=callback_url)


# --- The rows --------------------------------------------------------------------------


@dataclass
class RowCheck:
    number: int
    values: dict  # the row as given
    output_name: str  # the safe file name (no extension)
    errors: dict  # messages by column ("output_name", "non_field_errors" for the row)
    config: dict | None = None  # the nexrender config it renders; None when it has errors


def _is_local(path: str) -> bool:
    """Whether ``path`` is written the way this machine's paths are, so that it can be
    looked at here (DROPBOX_PATH decides the notation, not the OS checking it)."""
    windows = bool(re.match(r"^[A-Za-z]:", path)) or path.startswith(("\\\\", "//"))
    return windows == (os.name == "nt")


def _media_problem(src: str) -> str | None:
    try:
        resolved = resolve_source_file(src)
    except PathError as exc:
        return exc.message
    path = Path(resolved.path)
    if not _is_local(resolved.path):
        return None  # another OS's path: the render node checks it
    if path.is_dir():
        return f"Is a folder, not a file: {resolved.path}"
    if not path.is_file():
        return MEDIA_EXISTS_NOTE.format(path=resolved.path)
    return None


def _row_asset(name: str, column: dict, value, from_csv: bool, errors: dict) -> dict | None:
    def problem(message: str) -> None:
        errors.setdefault(name, []).append(message)

    if column["type"] == "data":
        if from_csv and isinstance(value, str):
            value = cell_value(value, column["property"])
        asset = {**column, "value": value}
    else:
        if not isinstance(value, str) or not value.strip():
            problem("Missing: give the file for this row (a path inside the Dropbox folder).")
            return None
        asset = {**column, "src": value.strip()}
    try:
        cleaned = clean_asset(asset, name)
    except InvalidInput as exc:
        for messages in exc.errors.values():
            for message in messages:
                problem(message)
        return None
    if column["type"] != "data":
        missing = _media_problem(asset["src"])
        if missing:
            problem(missing)
            return None
    return cleaned


def check_row(request: BatchRequest, number: int, raw) -> RowCheck:
    """One row: its assets, its output name and every problem, by column."""
    errors: dict[str, list[str]] = {}
    columns, pattern, from_csv = request.columns, request.pattern, request.table.from_csv
    values = raw if isinstance(raw, dict) else {}
    if not isinstance(raw, dict):
        errors[ROW_PROBLEM] = ["Must be an object of column values: {column: value}."]
    extra = values.pop(None, None) if from_csv else None
    if extra:
        errors[ROW_PROBLEM] = [f"Has {len(request.table.headers) + len(extra)} cells; the "
                               f"header line has {len(request.table.headers)} columns."]
    for key in values:
        if key not in columns and key not in pattern.columns:
            errors.setdefault(str(key), []).append(
                "Unknown column: not mapped in 'columns' and not used in output_name.")
    assets = []
    for name, column in columns.items():
        if name not in values:
            errors.setdefault(name, []).append("Missing: this row has no value for it.")
            continue
        asset = _row_asset(name, column, values[name], from_csv, errors)
        if asset is not None:
            assets.append(asset)
    for name in sorted(pattern.columns - set(columns)):
        if name not in values:
            errors.setdefault(name, []).append("Missing: output_name uses this column.")
    output_name = safe_output_name(pattern.render(values, number))
    if not output_name:
        errors.setdefault("output_name", []).append(
            f"{pattern.text!r} gives an empty file name for this row.")
    config = None
    if not errors:
        config = {"template": request.nexrender["template"],
                  "assets": [*request.nexrender["assets"], *assets]}
    return RowCheck(number, values, output_name, errors, config)


def check_rows(request: BatchRequest) -> list[RowCheck]:
    """Every row checked, in table order; output names that repeat are errors in each
    row that has them (compared without case, as Windows and macOS do)."""
    checks = [check_row(request, number, raw) for number, raw in request.table.rows]
    by_name: dict[str, list[RowCheck]] = {}
    for check in checks:
        if check.output_name:
            by_name.setdefault(check.output_name.casefold(), []).append(check)
    for same in by_name.values():
        if len(same) < 2:
            continue
        numbers = ", ".join(str(check.number) for check in same)
        for check in same:
            check.errors.setdefault("output_name", []).append(
                f"The output name {check.output_name!r} repeats (rows {numbers}); each row "
                "needs its own file name.")
            check.config = None
    return checks


def plan_batch(request: BatchRequest, checks: list[RowCheck], *, client: str,
               batch_id: uuid.UUID) -> tuple[dict, list[BatchRowPlan], dict]:
    """What jobs.lifecycle.submit_batch creates: the batch's fields, one plan per row
    (a job for a valid row, none for a skipped one) and the fields all jobs share."""
    project = request.resolved
    folder_name = request.name or f"{Path(project.path.replace(chr(92), '/')).stem}-" \
        f"{request.composition}"
    headers = list(request.table.headers or [])
    if not request.table.from_csv:
        for check in checks:
            headers += [str(key) for key in check.values if str(key) not in headers]
    batch = {"id": batch_id, "name": request.name, "user": request.user, "client": client,
             "mac_username": request.mac_username, "submitted_path": request.project_path,
             "project_path": project.relative, "path_key": project.key,
             "saved_at": request.saved_at, "config": request.nexrender,
             "columns": request.columns, "headers": headers,
             "output_name": request.pattern.text,
             "review": request.review, "preset": request.preset,
             "callback_url": request.callback_url,
             "folder": batch_folder(folder_name, batch_id)}
    shared = {"user": request.user, "client": client, "mac_username": request.mac_username,
              "engine": Engine.NEXRENDER, "submitted_path": request.project_path,
              # Relative to the Dropbox folder: each render node has its own.
              "project_path": project.relative, "path_key": project.key,
              "saved_at": request.saved_at, "preset": request.preset,
              "callback_url": request.callback_url, "review": request.review}
    plans = []
    for check in checks:
        job = None
        if check.config is not None and not check.errors:
            job = {"config": check.config, "name": check.output_name,
                   "output_name": check.output_name}
        plans.append(BatchRowPlan(number=check.number, values=_stored(check.values),
                                  output_name=check.output_name, errors=check.errors, job=job))
    return batch, plans, shared


def _stored(values: dict) -> dict:
    """A row's values as JSON can hold them (keys are text)."""
    return {str(key): value for key, value in values.items() if key is not None}
