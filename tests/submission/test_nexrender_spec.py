"""A nexrender job JSON is code: only the whitelisted, checked parts get through."""

import copy

import pytest

from jobs.submission.errors import InvalidInput
from jobs.submission.nexrender_spec import MAX_ASSETS, clean_nexrender_config

ROOT = r"C:\Users\Studio\Dropbox"


@pytest.fixture(autouse=True)
def windows_dropbox(settings):
    settings.DROPBOX_PATH = ROOT


FULL = {
    "template": {
        "composition": "Main->Lower third",
        "outputModule": "H.264 - Match Render Settings - 15 Mbps",
        "outputExt": "mp4",
        "settingsTemplate": "Best Settings",
        "renderSettings": "quality:Best;resolution:Full",
        "outputSettings": {"Format": "QuickTime", "Video Output": 1},
        "frameStart": 0,
        "frameEnd": 250,
        "frameIncrement": 1,
        "continueOnMissing": False,
        "imageSequence": False,
    },
    "assets": [
        {"type": "data", "layerName": "Title", "property": "Source Text",
         "value": 'Line one\rSay "hello" \\ it\'s fine'},
        {"type": "data", "layerIndex": 3, "property": "Transform.Position",
         "value": [960, 540.5], "composition": "Main"},
        {"type": "data", "layerName": "Logo", "property": "Opacity", "value": 50},
        {"type": "image", "src": "/Users/alice/Dropbox/brand/logo.png", "layerName": "Logo"},
        {"type": "video", "src": "file:///C:/Users/Studio/Dropbox/clips/a%20b.mov",
         "layerIndex": 1, "composition": "Main"},
        {"type": "audio", "src": ROOT + r"\music\bed.wav", "layerName": "Music"},
    ],
}


def problems(data) -> dict:
    with pytest.raises(InvalidInput) as refused:
        clean_nexrender_config(data)
    return refused.value.errors


def with_template(**changes):
    data = copy.deepcopy(FULL)
    data["template"].update(changes)
    return data


def with_asset(asset):
    return {"template": {"composition": "Main"}, "assets": [asset]}


def test_a_full_config_is_kept_and_normalised():
    cleaned = clean_nexrender_config(copy.deepcopy(FULL))

    template = cleaned["template"]
    assert template["composition"] == "Main->Lower third"
    assert template["renderSettings"] == "quality:Best;resolution:Full"
    assert template["outputSettings"] == "Format:QuickTime;Video Output:1"
    assert template["frameEnd"] == 250 and template["continueOnMissing"] is False
    assets = cleaned["assets"]
    assert assets[0]["value"] == FULL["assets"][0]["value"]
    assert assets[1] == {"type": "data", "layerIndex": 3, "property": "Transform.Position",
                         "value": [960, 540.5], "composition": "Main"}
    # Stored relative to the Dropbox folder: each render node has its own.
    assert assets[3]["src"] == "brand/logo.png"
    assert assets[4]["src"] == "clips/a b.mov"
    assert assets[5]["src"] == "music/bed.wav"


def test_the_minimum_is_a_composition():
    assert clean_nexrender_config({"template": {"composition": "Main"}}) == {
        "template": {"composition": "Main"}, "assets": []}


@pytest.mark.parametrize("key", ["actions", "uid", "output", "onChange", "onRenderProgress",
                                 "webhook", "tags", "priority", "workpath", "type"])
def test_top_level_keys_outside_the_whitelist_are_refused_by_name(key):
    data = copy.deepcopy(FULL)
    data[key] = {"prerender": [{"module": "/tmp/evil.js"}]} if key == "actions" else "x"

    errors = problems(data)

    assert list(errors) == [key]
    assert f"'{key}' is not accepted" in errors[key][0]


@pytest.mark.parametrize("key", ["src", "name", "output", "dest", "extension", "uid",
                                 "incrementFrame"])
def test_template_keys_outside_the_whitelist_are_refused(key):
    errors = problems(with_template(**{key: "../../evil"}))

    assert list(errors) == [f"template.{key}"]


@pytest.mark.parametrize("data", [None, [], "Main", 3])
def test_a_config_must_be_an_object(data):
    errors = problems(data)

    assert "Must be an object" in str(errors[0])


@pytest.mark.parametrize(("template", "where"), [
    ({}, "template.composition"),
    ({"composition": ""}, "template.composition"),
    ({"composition": 7}, "template.composition"),
    ({"composition": "x" * 256}, "template.composition"),
    ("Main", "template"),
])
def test_composition_is_required(template, where):
    assert where in problems({"template": template})


def test_template_is_required():
    assert "template" in problems({"assets": []})


# The strings nexrender pastes into generated ExtendScript (JSX injection).
INJECTIONS = [
    "Main'); system.callSystem('calc'); ('",
    'Main"); system.callSystem("calc"); ("',
    "Main\\'",
    "Main\nsystem.callSystem('calc')",
    "Main\r",
    "Main\x00",
    "Main\u2028",
    "Main */ system.callSystem('calc') /*",
    "Main$'",
    "Main`",
]


@pytest.mark.parametrize("text", INJECTIONS)
@pytest.mark.parametrize("key", ["composition", "outputModule", "settingsTemplate"])
def test_template_names_that_reach_jsx_are_checked(key, text):
    errors = problems(with_template(**{key: text}))

    assert list(errors) == [f"template.{key}"]
    assert "quotes" in errors[f"template.{key}"][0]


@pytest.mark.parametrize("text", INJECTIONS)
@pytest.mark.parametrize("key", ["layerName", "property", "composition"])
def test_asset_names_that_reach_jsx_are_checked(key, text):
    asset = {"type": "data", "layerName": "Title", "property": "Source Text", "value": "x"}
    asset[key] = text

    assert f"assets.0.{key}" in problems(with_asset(asset))


@pytest.mark.parametrize("settings_value", [
    "quality:Best';system.callSystem('calc",
    {"quality": "Best\nx"},
    {"qu\"ality": "Best"},
    {"quality": "Best;resolution:Full"},
    "no pairs here",
    {"quality": ["Best"]},
    {"quality": True},
    {},
    7,
])
def test_render_and_output_settings_are_checked(settings_value):
    for key in ("renderSettings", "outputSettings"):
        errors = problems(with_template(**{key: settings_value}))
        assert any(where.startswith(f"template.{key}") for where in errors), errors


@pytest.mark.parametrize(("key", "value"), [
    ("outputExt", "mp4; rm -rf"),
    ("outputExt", "../x"),
    ("outputExt", ""),
    ("outputExt", "averyverylongext"),
    ("frameStart", -1),
    ("frameStart", "0"),
    ("frameStart", 1.5),
    ("frameStart", True),
    ("frameEnd", 10**12),
    ("frameIncrement", 0),
    ("continueOnMissing", "true); system.callSystem('calc'); (true"),
    ("continueOnMissing", 1),
    ("imageSequence", "yes"),
])
def test_template_values_have_checked_types(key, value):
    assert f"template.{key}" in problems(with_template(**{key: value}))


def test_frame_end_may_not_precede_frame_start():
    assert "template.frameEnd" in problems(with_template(frameStart=100, frameEnd=10))


@pytest.mark.parametrize("kind", ["script", "static"])
def test_script_and_static_assets_are_refused(kind):
    asset = {"type": kind, "src": "data:text/javascript,require('child_process')",
             "keyword": "x"}

    errors = problems(with_asset(asset))

    assert list(errors) == ["assets.0.type"]
    assert "not accepted" in errors["assets.0.type"][0]


@pytest.mark.parametrize("kind", [None, "font", "DATA", 1])
def test_unknown_asset_types_are_refused(kind):
    assert "assets.0.type" in problems(with_asset({"type": kind, "layerName": "x"}))


def test_expressions_are_refused():
    asset = {"type": "data", "layerName": "Title", "property": "Source Text",
             "expression": "system.callSystem('calc')", "value": "x"}

    errors = problems(with_asset(asset))

    assert list(errors) == ["assets.0.expression"]
    assert "evaluated as code" in errors["assets.0.expression"][0]


@pytest.mark.parametrize("keypath", ["transform.position.expression", "expression",
                                     "Transform.Position.Expression", "Source Text.expression",
                                     "transform. expression .x", "opacity.expressionEnabled"])
def test_a_property_keypath_may_not_reach_an_expression(keypath):
    # nexrender assigns the value to the keypath's last key: "....expression" would set
    # an After Effects expression (code) through the back door.
    asset = {"type": "data", "layerName": "Title", "property": keypath,
             "value": "system.callSystem('calc')"}

    errors = problems(with_asset(asset))

    assert list(errors) == ["assets.0.property"]
    assert "expressions are evaluated as code" in errors["assets.0.property"][0]


@pytest.mark.parametrize("keypath", ["Source Text", "transform.position", "Effects.Expr.Value",
                                     "Effects.My expressive glow.Amount"])
def test_ordinary_keypaths_are_kept(keypath):
    asset = {"type": "data", "layerName": "Title", "property": keypath, "value": 1}

    assert clean_nexrender_config(with_asset(asset))["assets"][0]["property"] == keypath


@pytest.mark.parametrize("key", ["name", "params", "useOriginal", "extension", "dest",
                                 "sequence", "removeOld"])
def test_media_asset_keys_outside_the_whitelist_are_refused(key):
    asset = {"type": "image", "src": ROOT + r"\logo.png", "layerName": "Logo",
             key: "../../../evil.js"}

    assert list(problems(with_asset(asset))) == [f"assets.0.{key}"]


@pytest.mark.parametrize(("src", "says"), [
    ("https://example.com/logo.png", "not URLs"),
    ("http://127.0.0.1:3000/api/v1/jobs", "not URLs"),
    ("data:text/plain;base64,aGk=", "not URLs"),
    ("file:///C:/Windows/win.ini", "not inside the Dropbox folder"),
    (ROOT + r"\..\secret.png", "'..'"),
    (r"\\fileserver\share\logo.png", "Network"),
    (None, "Must be the path"),
    (["x"], "Must be the path"),
])
def test_media_sources_must_be_files_in_dropbox(src, says):
    errors = problems(with_asset({"type": "image", "src": src, "layerName": "Logo"}))

    assert says in errors["assets.0.src"][0]


@pytest.mark.parametrize("layer", [
    {},
    {"layerName": "Logo", "layerIndex": 1},
])
def test_exactly_one_of_layer_name_and_index(layer):
    asset = {"type": "image", "src": ROOT + r"\logo.png", **layer}

    assert "Give exactly one" in problems(with_asset(asset))["assets.0"][0]


@pytest.mark.parametrize("index", ["1); system.callSystem('calc'); (1", 0, -1, 1.0, True,
                                   10**9])
def test_layer_index_must_be_a_number(index):
    asset = {"type": "data", "layerIndex": index, "property": "Opacity", "value": 1}

    assert "assets.0.layerIndex" in problems(with_asset(asset))


@pytest.mark.parametrize("value", [
    {"x": 1},
    [[1, 2]],
    ["a", "b"],
    [True],
    "x" * (10 * 1024 + 1),
    list(range(3000)),
    "bell\x07",
    "nul\x00",
])
def test_data_values_are_scalars_or_lists_of_numbers_up_to_10kb(value):
    asset = {"type": "data", "layerName": "Title", "property": "Source Text", "value": value}

    assert "assets.0.value" in problems(with_asset(asset))


def test_data_assets_need_a_value_and_a_property():
    errors = problems(with_asset({"type": "data", "layerName": "Title"}))

    assert {"assets.0.property", "assets.0.value"} <= set(errors)


@pytest.mark.parametrize("value", [None, True, 0, -1.5, "", "Ünïcödé ✓", [0, 0.5, 1]])
def test_plain_data_values_pass(value):
    asset = {"type": "data", "layerName": "Title", "property": "Source Text", "value": value}

    assert clean_nexrender_config(with_asset(asset))["assets"][0]["value"] == value


def test_assets_are_a_bounded_list():
    one = {"type": "data", "layerName": "Title", "property": "Opacity", "value": 1}

    assert "assets" in problems({"template": {"composition": "Main"}, "assets": one})
    too_many = {"template": {"composition": "Main"}, "assets": [one] * (MAX_ASSETS + 1)}
    assert "At most" in problems(too_many)["assets"][0]
    assert "assets.0" in problems({"template": {"composition": "Main"}, "assets": ["x"]})


def test_every_problem_is_reported_at_once():
    data = {"template": {"composition": "Ma'in", "frameStart": -1}, "actions": {},
            "assets": [{"type": "script"}, {"type": "data", "layerIndex": "1"}]}

    errors = problems(data)

    assert {"actions", "template.composition", "template.frameStart", "assets.0.type",
            "assets.1.layerIndex", "assets.1.property", "assets.1.value"} <= set(errors)
