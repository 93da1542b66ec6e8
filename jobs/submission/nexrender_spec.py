"""The part of a nexrender job a client may choose, checked key by key.

A nexrender job JSON is code (see notes/nexrender.md): actions are
``require()``d, ``uid`` and ``name`` become paths, several strings are pasted
unescaped into generated ExtendScript, and asset sources are fetched from
anywhere. So nothing passes through unchecked: only the keys below, with their
types, and names free of anything that could end a JSX string or comment. The
engine then builds the real job around the cleaned dict (uid, template.src,
names, output).
"""

from __future__ import annotations

import json
import math
import re

from jobs.submission.errors import FieldErrors, InvalidInput, is_int
from jobs.submission.paths import PathError, resolve_source_file

MAX_ASSETS = 200
MAX_NAME_CHARS = 255
MAX_VALUE_BYTES = 10 * 1024
MAX_FRAME = 10_000_000
MAX_LAYER_INDEX = 100_000
MAX_SETTINGS = 50

TEMPLATE_NAMES = ("composition", "outputModule", "settingsTemplate")
TEMPLATE_KEYS = set(TEMPLATE_NAMES) | {
    "outputExt", "renderSettings", "outputSettings", "frameStart", "frameEnd",
    "frameIncrement", "continueOnMissing", "imageSequence",
}
MEDIA_TYPES = ("image", "video", "audio")
# nexrender (tasks/setup.js) names these outputs result_[#####].<ext>.
IMAGE_SEQUENCE_EXTS = ("jpeg", "jpg", "png", "tif", "tga")
DATA_KEYS = {"type", "layerName", "layerIndex", "property", "value", "composition"}
MEDIA_KEYS = {"type", "src", "layerName", "layerIndex", "composition"}

# Why each commonly tried key is refused, so the client learns what to do instead.
REFUSED = {
    "actions": "actions run arbitrary code in the render worker",
    "uid": "the render manager sets the job id",
    "output": "the render manager decides where the output goes",
    "dest": "the render manager decides where files go",
    "name": "the render manager names files itself",
    "src": "the project file is the submission's project_path",
    "extension": "the render manager names files itself",
    "expression": "expressions are evaluated as code",
    "params": "download options are not configurable",
    "useOriginal": "assets are always copied",
    "priority": "priority is set by admins",
    "onChange": "notifications are configured with callback_url",
    "onRenderProgress": "notifications are configured with callback_url",
    "webhook": "notifications are configured with callback_url",
}
# Characters that end or escape a JSX string literal, or a comment; "$" is a
# String.replace pattern where nexrender pastes the composition name.
_UNSAFE = re.compile(r"""['"`\\$]|\*/|[\x00-\x1f\x7f\u2028\u2029\ud800-\udfff]""")
_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,10}$")
# Data values may hold line breaks (text layers); other control characters
# break the script or cannot be stored.
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029\ud800-\udfff]")


def is_image_sequence(template: dict) -> bool:
    """Whether ``template`` renders a sequence of images rather than one video file."""
    ext = str(template.get("outputExt") or "").lstrip(".").lower()
    return ext in IMAGE_SEQUENCE_EXTS or bool(template.get("imageSequence"))


def _name(errors: FieldErrors, where: str, value, *, required: bool = False) -> str | None:
    """A name nexrender pastes into ExtendScript."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(where, "Must be a non-empty string.")
        return None
    if len(value) > MAX_NAME_CHARS:
        errors.add(where, f"Must be at most {MAX_NAME_CHARS} characters.")
        return None
    if _UNSAFE.search(value):
        errors.add(where, "May not contain quotes, backslashes, '$', '*/' or control characters.")
        return None
    return value


def _frame(errors: FieldErrors, where: str, value, minimum: int) -> int | None:
    if value is None:
        return None
    if not is_int(value) or not minimum <= value <= MAX_FRAME:
        errors.add(where, f"Must be a whole number from {minimum} to {MAX_FRAME}.")
        return None
    return value


def _bool(errors: FieldErrors, where: str, value) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        errors.add(where, "Must be true or false.")
        return None
    return value


def _settings(errors: FieldErrors, where: str, value) -> str | None:
    """aerender's ``-renderSettings``/``-outputSettings``: "name:value;name:value".

    Accepted as that string or as an object; the cleaned form is the string.
    """
    if value is None:
        return None
    if isinstance(value, str):
        pairs = [item.split(":", 1) for item in value.split(";") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            errors.add(where, "Must look like 'name:value;name:value'.")
            return None
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        errors.add(where, "Must be an object of setting names and values.")
        return None
    if not pairs or len(pairs) > MAX_SETTINGS:
        errors.add(where, f"Must name 1 to {MAX_SETTINGS} settings.")
        return None
    cleaned = []
    for key, item in pairs:
        if isinstance(item, bool) or not isinstance(item, str | int | float) or (
                isinstance(item, float) and not math.isfinite(item)):
            errors.add(f"{where}.{key}", "Must be a string or a number.")
            continue
        text_key, text_value = str(key).strip(), str(item).strip()
        for part in (text_key, text_value):
            if (not part or len(part) > MAX_NAME_CHARS or _UNSAFE.search(part)
                    or ":" in part or ";" in part):
                errors.add(f"{where}.{key}", "Names and values must be non-empty, without "
                           "quotes, backslashes, '$', ':', ';' or control characters.")
                break
        else:
            cleaned.append(f"{text_key}:{text_value}")
    return ";".join(cleaned)


def _template(errors: FieldErrors, data) -> dict:
    if not isinstance(data, dict):
        errors.add("template", "Must be an object with at least 'composition'.")
        return {}
    errors.unknown_keys("template", data, TEMPLATE_KEYS)
    cleaned = {"composition": _name(errors, "template.composition", data.get("composition"),
                                    required=True)}
    for key in ("outputModule", "settingsTemplate"):
        cleaned[key] = _name(errors, f"template.{key}", data.get(key))
    ext = data.get("outputExt")
    if ext is not None and not (isinstance(ext, str) and _EXTENSION.match(ext)):
        errors.add("template.outputExt", "Must be 1 to 10 letters or digits, like 'mp4'.")
    cleaned["outputExt"] = ext
    for key in ("renderSettings", "outputSettings"):
        cleaned[key] = _settings(errors, f"template.{key}", data.get(key))
    cleaned["frameStart"] = _frame(errors, "template.frameStart", data.get("frameStart"), 0)
    cleaned["frameEnd"] = _frame(errors, "template.frameEnd", data.get("frameEnd"), 0)
    cleaned["frameIncrement"] = _frame(errors, "template.frameIncrement",
                                       data.get("frameIncrement"), 1)
    start, end = cleaned["frameStart"], cleaned["frameEnd"]
    if start is not None and end is not None and end < start:
        errors.add("template.frameEnd", "Must not be before frameStart.")
    for key in ("continueOnMissing", "imageSequence"):
        cleaned[key] = _bool(errors, f"template.{key}", data.get(key))
    return {key: value for key, value in cleaned.items() if value is not None}


def _layer(errors: FieldErrors, where: str, asset: dict, cleaned: dict) -> None:
    has_name, has_index = "layerName" in asset, "layerIndex" in asset
    if has_name == has_index:
        errors.add(where, "Give exactly one of 'layerName' and 'layerIndex'.")
    elif has_name:
        cleaned["layerName"] = _name(errors, f"{where}.layerName", asset["layerName"],
                                     required=True)
    else:
        index = asset["layerIndex"]
        # nexrender pastes the index into the script as it is: only a number will do.
        if not is_int(index) or not 1 <= index <= MAX_LAYER_INDEX:
            errors.add(f"{where}.layerIndex", f"Must be a whole number from 1 to "
                                              f"{MAX_LAYER_INDEX}.")
        else:
            cleaned["layerIndex"] = index
    if "composition" in asset:
        cleaned["composition"] = _name(errors, f"{where}.composition", asset["composition"],
                                       required=True)


def _property(errors: FieldErrors, where: str, value) -> str | None:
    """A data asset's property keypath (``Source Text``, ``transform.position``).

    nexrender walks the keypath and assigns the value to the last key, so a
    keypath ending in ``expression`` (or ``expressionEnabled``) would set an
    After Effects expression, which is code: no segment may be one.
    """
    name = _name(errors, where, value, required=True)
    if name is None:
        return None
    for segment in name.split("."):
        if segment.strip().casefold().startswith("expression"):
            errors.add(where, f"'{segment.strip()}' may not be set: expressions are evaluated "
                              "as code. Set the property's value instead.")
            return None
    return name


def _value(errors: FieldErrors, where: str, value):
    if isinstance(value, float) and not math.isfinite(value):
        errors.add(where, "Must be a finite number.")
    elif isinstance(value, str) and _VALUE_CONTROL.search(value):
        errors.add(where, "May not contain control characters other than line breaks and tabs.")
    elif isinstance(value, list):
        if not all(isinstance(n, int | float) and not isinstance(n, bool)
                   and math.isfinite(n) for n in value):
            errors.add(where, "A list value must hold numbers only (a position, a colour).")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        errors.add(where, "Must be a string, a number, true/false, null or a list of numbers.")
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode(errors="replace"))
    if size > MAX_VALUE_BYTES:
        errors.add(where, f"Must be at most {MAX_VALUE_BYTES // 1024} KB.")


def _asset(errors: FieldErrors, where: str, asset) -> dict:
    if not isinstance(asset, dict):
        errors.add(where, "Must be an object.")
        return {}
    kind = asset.get("type")
    if kind == "data":
        errors.unknown_keys(where, asset, DATA_KEYS)
        cleaned = {"type": "data"}
        _layer(errors, where, asset, cleaned)
        cleaned["property"] = _property(errors, f"{where}.property", asset.get("property"))
        if "value" not in asset:
            errors.add(f"{where}.value", "This field is required.")
        else:
            _value(errors, f"{where}.value", asset["value"])
            cleaned["value"] = asset["value"]
        return cleaned
    if kind in MEDIA_TYPES:
        errors.unknown_keys(where, asset, MEDIA_KEYS)
        cleaned = {"type": kind}
        src = asset.get("src")
        if not isinstance(src, str):
            errors.add(f"{where}.src", "Must be the path (or file:// URI) of a file inside "
                                       "the Dropbox folder.")
        else:
            try:
                # Stored relative to the Dropbox folder; each render node finds it in
                # its own (jobs.node.engines.nexrender builds the file:// URI).
                cleaned["src"] = resolve_source_file(src).relative
            except PathError as exc:
                errors.add(f"{where}.src", exc.message)
        _layer(errors, where, asset, cleaned)
        return cleaned
    if kind in ("script", "static"):
        errors.add(f"{where}.type", f"'{kind}' assets are not accepted: they run or fetch "
                                    "arbitrary code.")
    else:
        errors.add(f"{where}.type", "Must be one of: data, image, video, audio.")
    return {}


def clean_nexrender_config(data) -> dict:
    """The client's nexrender ``template`` and ``assets``, checked; InvalidInput if not.

    Errors are keyed by dotted paths (``template.composition``, ``assets.0.src``).
    Settings strings are normalised to aerender's "name:value;..." form.
    """
    errors = FieldErrors(REFUSED)
    if not isinstance(data, dict):
        raise InvalidInput(["Must be an object with 'template' and optional 'assets'."])
    errors.unknown_keys("", data, {"template", "assets"})
    cleaned = {"template": {}, "assets": []}
    if "template" not in data:
        errors.add("template", "This field is required.")
    else:
        cleaned["template"] = _template(errors, data["template"])
    assets = data.get("assets", [])
    if not isinstance(assets, list):
        errors.add("assets", "Must be a list.")
    elif len(assets) > MAX_ASSETS:
        errors.add("assets", f"At most {MAX_ASSETS} assets.")
    else:
        cleaned["assets"] = [_asset(errors, f"assets.{i}", a) for i, a in enumerate(assets)]
    errors.raise_if_any()
    return cleaned


def clean_asset(asset, where: str) -> dict:
    """One asset alone (a batch row's), checked like a job's; errors keyed ``<where>.<key>``."""
    errors = FieldErrors(REFUSED)
    cleaned = _asset(errors, where, asset)
    errors.raise_if_any()
    return cleaned


def clean_column(definition, where: str) -> dict:
    """A batch column: the asset a column fills, without the value (data) or the
    source (media) that each row gives. Checked like an asset's other keys."""
    errors = FieldErrors({**REFUSED, "value": "each row of the table gives the value",
                          "src": "each row of the table gives the file"})
    if not isinstance(definition, dict):
        raise InvalidInput({where: ["Must be an object like {\"type\": \"data\", "
                                    "\"layerName\": \"Title\", \"property\": \"Source Text\"}."]})
    kind = definition.get("type")
    if kind == "data":
        errors.unknown_keys(where, definition, DATA_KEYS - {"value"})
        cleaned = {"type": "data"}
        _layer(errors, where, definition, cleaned)
        cleaned["property"] = _property(errors, f"{where}.property", definition.get("property"))
    elif kind in MEDIA_TYPES:
        errors.unknown_keys(where, definition, MEDIA_KEYS - {"src"})
        cleaned = {"type": kind}
        _layer(errors, where, definition, cleaned)
    else:
        errors.add(f"{where}.type", "Must be one of: data, image, video, audio.")
        cleaned = {}
    errors.raise_if_any()
    return cleaned


def asset_sources(config: dict) -> list[tuple[str, str]]:
    """(dotted field, stored src) of every media asset of a cleaned config."""
    return [(f"assets.{i}.src", asset["src"])
            for i, asset in enumerate((config or {}).get("assets") or [])
            if isinstance(asset, dict) and isinstance(asset.get("src"), str)]
