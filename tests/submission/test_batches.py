"""The batch input rules in jobs.submission.batches: reading CSV files as
spreadsheets write them, the output name pattern, safe file names, cell values,
and the hook that compares mapped layers with the composition."""

from __future__ import annotations

import pytest

from jobs.submission.batches import (
    batch_folder,
    cell_value,
    check_rows,
    clean_batch,
    drop_csv_columns,
    parse_csv,
    parse_output_pattern,
    safe_output_name,
)
from jobs.submission.errors import InvalidInput
from tests.helpers.common import make_project

# --- CSV --------------------------------------------------------------------------------


def test_excel_csv_utf8_with_bom_and_crlf():
    # What Excel's "CSV UTF-8" export writes: a BOM, CRLF line ends, quotes where needed.
    table = parse_csv('\ufeffTitle,Subtitle\r\n"Grüße, Köln","Line one\r\nline two"\r\n')

    assert table.headers == ["Title", "Subtitle"]
    assert table.rows == [(1, {"Title": "Grüße, Köln", "Subtitle": "Line one\r\nline two"})]


def test_semicolons_as_european_spreadsheets_write_them():
    table = parse_csv("title;price\nA;1,50\nB;2,00\n")

    assert [row for _, row in table.rows] == [{"title": "A", "price": "1,50"},
                                             {"title": "B", "price": "2,00"}]


def test_header_names_are_trimmed_and_blank_lines_are_not_rows():
    table = parse_csv("\n  title , photo\t\n\nA,a.png\n   \nB,b.png\n")

    assert table.headers == ["title", "photo"]
    assert [number for number, _ in table.rows] == [1, 2]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "The CSV is empty"),
    ("title,,photo\nA,x,y\n", "needs a name"),
    ("title,Title\nA,B\n", "appears twice"),
    ('title\n"unterminated\n', "Cannot read the CSV"),
])
def test_unreadable_csv_files_are_refused_with_the_reason(text, problem):
    with pytest.raises(InvalidInput) as refused:
        parse_csv(text)
    assert problem in " ".join(refused.value.errors)


def test_dropping_columns_keeps_the_rest_and_extra_cells():
    text = "title;notes;photo\nA;x;a.png\nB;y;b.png;surplus\n"

    kept = parse_csv(drop_csv_columns(text, {"notes"}))

    assert kept.headers == ["title", "photo"]
    assert kept.rows[0][1] == {"title": "A", "photo": "a.png"}
    assert kept.rows[1][1][None] == ["surplus"]


# --- Output names ---------------------------------------------------------------------------


def test_the_pattern_fills_columns_and_the_row_number():
    pattern = parse_output_pattern("{title}-{ row }-{{draft}}")

    assert pattern.columns == {"title"}
    assert pattern.render({"title": "Ana"}, 7) == "Ana-7-{draft}"
    assert pattern.render({"title": 3.0}, 1) == "3-1-{draft}"


@pytest.mark.parametrize("text", ["{title", "title}", "{}", "", "   ", 5, "x" * 501])
def test_broken_patterns_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_output_pattern(text)


@pytest.mark.parametrize(("text", "safe"), [
    ('Q3: "Big" sale/ad?', "Q3_ _Big_ sale_ad_"),
    ("  spaced   out . ", "spaced out"),
    ("Grüße aus Köln — 東京", "Grüße aus Köln — 東京"),
    ("nul", "_nul"),
    ("COM1.final", "_COM1.final"),
    ("a\tb\nc", "a_b_c"),
    ("...", ""),
    ("x" * 300, "x" * 120),
])
def test_file_names_are_safe_on_windows_and_macos(text, safe):
    assert safe_output_name(text) == safe


def test_the_batch_folder_names_the_batch_and_is_unique():
    import uuid

    batch_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert batch_folder("Spring / promo", batch_id) == "Spring _ promo_12345678"
    assert batch_folder("", batch_id) == "batch_12345678"


# --- Cells ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "prop", "value"), [
    ("2024", "Source Text", "2024"),
    ("true", "Source Text", "true"),
    ("50", "Opacity", 50),
    ("12.5", "Opacity", 12.5),
    ("1e3", "Opacity", 1000.0),
    ("[960, 540]", "Position", [960, 540]),
    ("[960, x]", "Position", "[960, x]"),
    ("false", "Enabled", False),
    ("half", "Opacity", "half"),
])
def test_csv_cells_become_numbers_only_outside_text(text, prop, value):
    assert cell_value(text, prop) == value


# --- The whole request ------------------------------------------------------------------------


@pytest.fixture
def request_data(dropbox, user):
    make_project(dropbox, "lt.aep")
    (dropbox / "media").mkdir()
    (dropbox / "media" / "a.png").write_bytes(b"png")
    return {"project_path": str(dropbox / "projects" / "lt.aep"),
            "saved_at": "2025-01-01T00:00:00Z", "mac_username": "alice",
            "nexrender": {"template": {"composition": "Main"}},
            "columns": {"title": {"type": "data", "layerName": "Title",
                                  "property": "Source Text"},
                        "photo": {"type": "image", "layerName": "Photo",
                                  "composition": "Inner"}},
            "rows": [{"title": "A", "photo": str(dropbox / "media" / "a.png")}]}


def test_mapped_layers_are_compared_with_the_composition_when_it_can_be_read(request_data):
    asked = []

    def layers(project, composition):
        asked.append((project.rsplit("/", 1)[-1], composition))
        return {"Main": ["Title", "Logo"], "Inner": ["Picture"]}

    with pytest.raises(InvalidInput) as refused:
        clean_batch(request_data, read_layers=layers)

    assert refused.value.errors == {"columns": {"photo.layerName": [
        "No layer named 'Photo' in the composition 'Inner'."]}}
    assert asked == [("lt.aep", "Main")]  # one read per batch


def test_a_composition_missing_from_the_project_is_named(request_data):
    with pytest.raises(InvalidInput) as refused:
        clean_batch(request_data, read_layers=lambda project, composition:
                    "The project has no composition 'Main' (it has: Intro).")

    assert refused.value.errors == {"nexrender": {"template.composition": [
        "The project has no composition 'Main' (it has: Intro)."]}}


def test_an_unreadable_project_skips_the_layer_comparison(request_data):
    batch = clean_batch(request_data, read_layers=lambda project, composition: None)

    [check] = check_rows(batch)
    assert check.errors == {} and check.output_name == "row-1"


def test_a_folder_is_not_a_media_file(request_data, dropbox):
    request_data["rows"][0]["photo"] = str(dropbox / "media")

    [check] = check_rows(clean_batch(request_data))

    assert check.errors == {"photo": [f"Is a folder, not a file: {dropbox / 'media'}"]}


def test_a_row_with_too_many_cells_is_reported(request_data):
    del request_data["rows"]
    request_data["csv"] = f"title,photo\nA,{request_data['project_path']},extra\n"

    [check] = check_rows(clean_batch(request_data))

    assert check.errors["non_field_errors"] == ["Has 3 cells; the header line has 2 columns."]
