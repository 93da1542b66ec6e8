"""What After Effects prints, read in one place for both AE engines.

aerender's own lines are the truth about an AE render; nexrender (run with
--debug) echoes them and adds its own. Every rule here was taken from real
output that users posted (tests/data/aelogs/, each file names its source):

- frame lines come with or without ``PROGRESS:`` (the render-log style AE
  uses since about 2018 has none): ``0:00:12:11 (300): 0 Seconds``. The
  number in parentheses counts the frames rendered so far in this run, from
  1; progress comes from it, so missing, repeated and joined lines do not
  matter. Timecodes may use ``;`` (drop frame).
- the total comes from the job (a known total, or its frame range), else
  from ``Duration`` x ``Frame Rate`` in the render settings block, whose
  numbers follow the machine's locale (``25,00``). A localized AE translates
  the labels, so unknown labels are read by position: the block always
  lists Start, End, Duration (timecodes) and then the rate.
- a good render ends with ``Finished composition ...`` and ``Total Time
  Elapsed``; there is no "Render Finished" line. Warnings may come after it.
- errors are ``aerender ERROR: ...``, ``aerender ERROR -1701: ...``,
  ``aerender Error: After Effects error: ...``, a bare ``Error: After
  Effects error: ...`` and ``WARNING:After Effects warning: logged one
  error  error: ...``; nexrender copies them as ``rendering reached an
  error: ...`` and adds ``Couldn't find a result file`` and a stack trace,
  which are never the cause.

``AeOutput`` follows one render line by line (progress, errors, warnings);
``judge`` decides at the end whether it rendered, and if not, why: a
``Cause`` with an ``error_code``, one line of AE's own words, a hint, and
whether another attempt could help.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from jobs.models import Phase

MAX_ERRORS = 20
MAX_WARNINGS = 30
MESSAGE_CHARS = 500
CAUSE_CHARS = 400

# --- The grammar ------------------------------------------------------------------

# H:MM:SS:FF, or H;MM;SS;FF in drop frame.
_TC = r"(\d{1,2})([:;])(\d{2})[:;](\d{2})[:;](\d{2,3})"
TIMECODE = re.compile(r"^" + _TC + r"$")
# A frame line; several may share one line. Field renders add U or L to the counter.
FRAME = re.compile(r"(?<![\d:;])" + _TC + r"\s+\((\d+)[UL]?\):")
# "Label: value" in the render settings block (the label in any language).
SETTING = re.compile(r"^([^\W\d][^:]{0,60}?):\s+(\S.*?)\s*$")
RATE_VALUE = re.compile(r"^(\d{1,3}(?:[.,]\d+)?)\s*\(")
# Other programs' prefixes in front of aerender's lines: DuME's "[17:09:09.816]: ",
# Deadline's "[STDOUT] ", and the "Error: " nexrender puts before the first line
# of the output it repeats when a render fails.
WRAPPER = re.compile(r"^(?:\[\d{1,2}:\d{2}:\d{2}\.\d{3}\]:\s?|\[STD(?:OUT|ERR)\]\s?|-\s+"
                     r"|Error:\s+(?=aerender |PROGRESS:|WARNING:|INFO:|Running Script))+")
# nexrender's own lines: "[<job uid>] ...".
NEXRENDER_LINE = re.compile(r"^\[([A-Za-z0-9_-]{9,64})\]\s(.*)$")
AE_ERROR = re.compile(r"\baerender\s+(SYNTAX\s+)?(?:ERROR|Error)(?:\s+(-?\d+))?:\s*(.*)$")
BARE_ERROR = re.compile(r"^Error:\s+((?:After Effects error|nexrender):.*)$")
WARNING = re.compile(r"^WARNING:\s*([^:]{0,80}):\s*(.*)$")
# "logged one error" is an error AE reports inside a warning. The Portuguese
# wording is from a real pt-BR log (tests/data/aelogs/34_*).
LOGGED_ERROR = re.compile(r"(?:logged one error\s+error:|registrado um erro\s*¶?)\s*(.*)$")
FONT = re.compile(r"(?:([^:{}]+):\s*)?Font family:\s*(.+?),\s*Font style:\s*(.+)$")
GROUPED = re.compile(r"^Grouped_Message_\{[^}]*\}")
VERSION = re.compile(r"^aerender version (\S+)")
ELAPSED = re.compile(r"Total Time Elapsed:\s*(.*)$")
ELAPSED_PART = re.compile(r"(\d+)\s*(Hr|Min|Sec)", re.IGNORECASE)

ENGLISH_TIMES = {"start": 0, "end": 1, "duration": 2}


def timecode_frames(hh: int, mm: int, ss: int, ff: int, fps: float, drop: bool) -> int:
    """Frames counted by a timecode. AE timecode runs at the nominal (rounded)
    rate (23.976 counts 24 a second); drop frame skips 2 (4 at 60 fps) numbers a
    minute, except every tenth minute."""
    nominal = max(1, round(fps))
    frames = (hh * 3600 + mm * 60 + ss) * nominal + ff
    if drop and nominal in (30, 60):
        dropped = 2 if nominal == 30 else 4
        minutes = hh * 60 + mm
        frames -= dropped * (minutes - minutes // 10)
    return frames


def one_line(text: str, limit: int = CAUSE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- Causes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A known AE message. ``rank`` orders several errors of one render: the most
    specific wins (a codec error over the "Runtime error" that follows it)."""

    code: str
    pattern: re.Pattern | None
    permanent: bool
    hint: str
    rank: int = 2


def _rule(code, pattern, permanent, hint, rank=2):
    return Rule(code, re.compile(pattern, re.IGNORECASE) if pattern else None, permanent,
                hint, rank)


RULES = (
    _rule("missing_composition", r"No comp was found with the given name", True,
          "The job asks for the composition “{composition}” and the project has none by "
          "that name: check template.composition against the project (names must match "
          "exactly, with case and spaces)."),
    _rule("missing_template", r"No (?:render settings|output module) template was found", True,
          "A template the job names ({templates}) does not exist in After Effects on the "
          "render node. Templates are kept per machine and AE version: create it there "
          "(Edit > Templates) or name one that exists."),
    _rule("ae_busy", r"can not render for aerender|Another instance of aerender", False,
          "After Effects on the render node is busy: another aerender or a script is "
          "running, or After Effects shows a dialog waiting for an answer. Close After "
          "Effects and any dialog on the node; the job is tried again."),
    _rule("ae_launch_failed", r"AEGetParamPt failed|^-1701\b", False,
          "aerender could not talk to After Effects (macOS error -1701). On macOS give the "
          "program that runs the worker (Terminal, or Node for PM2) Automation and Full Disk "
          "Access permission for After Effects in System Settings > Privacy & Security, and "
          "run the worker as the signed-in user, not with sudo."),
    _rule("bad_arguments", r"Illegal argument flag|^SYNTAX\b", True,
          "aerender on the render node refused its command line: this After Effects "
          "version does not accept one of the options (for example -reuse on newer macOS "
          "builds)."),
    _rule("output_not_writable", r"Can not create a file in directory|checking write permissions",
          True,
          "After Effects could not create the output file in the render node's work folder: "
          "check that the account running the worker may write to RENDER_TEMP_DIR and that "
          "the disk is not full."),
    _rule("output_write_failed", r"Rendering error while writing to file|output module failed",
          False,
          "Writing the output failed part way (a full disk, an antivirus or another program "
          "holding the file, or too many renders encoding at once); the job is tried again."),
    _rule("footage_unreadable", r"Could not read from source", True,
          "After Effects could not read a footage file: it may be damaged, not completely "
          "synced, or in a format AE cannot decode (HEVC or variable frame rate video, for "
          "example). Re-export it (ProRes, say) and retry."),
    _rule("unsupported_codec", r"compression type is not supported", True,
          "A footage file uses a compression After Effects on the render node cannot decode: "
          "transcode it (ProRes or H.264) or install the codec on the node."),
    _rule("missing_footage", r"File Not Found|arquivo .+ n\S{1,3}o localizado", True,
          "The project uses footage that is not on the render node (see the warnings): "
          "sync or relink it, or submit with continueOnMissing to render with placeholders."),
    _rule("script_error", r"^nexrender:", True,
          "nexrender's script failed inside After Effects while applying the job's assets: "
          "check that every asset's layer and composition exist in the project.", rank=1),
    _rule("script_error", r"Error executing script|Runtime error in After Effects", True,
          "A script failed inside After Effects (see the render log for its message).",
          rank=0),
)
UNKNOWN_ERROR = _rule("ae_error", None, False,
                      "After Effects reported this error (shown as AE printed it); the job is "
                      "tried again in case it was passing.", rank=0)
UNDECODABLE = ("Some characters could not be decoded: a localized After Effects printed it "
               "in another code page; the render log keeps what arrived.")

TITLES = {
    "missing_composition": "Composition not found",
    "missing_template": "Template not found",
    "ae_busy": "After Effects was busy",
    "ae_launch_failed": "After Effects did not start",
    "bad_arguments": "aerender refused its options",
    "output_not_writable": "Output not writable",
    "output_write_failed": "Writing the output failed",
    "footage_unreadable": "Footage unreadable",
    "unsupported_codec": "Unsupported codec",
    "missing_footage": "Missing footage",
    "script_error": "Script error",
    "ae_error": "After Effects error",
    "ae_exited_silently": "After Effects quit without rendering",
    "crashed": "The render crashed",
    "stalled": "The render stalled",
    "no_output": "No output file",
    "node_lost": "The render node stopped",
    "encoding_failed": "Encoding failed",
    "internal_error": "Internal error",
    "missing_font": "Missing font",
    "ae_warning": "After Effects warning",
}


def rule_for(message: str) -> Rule:
    for rule in RULES:
        if rule.pattern.search(message):
            return rule
    return UNKNOWN_ERROR


@dataclass
class Cause:
    """Why an attempt did not render: ``cause`` is one line of AE's own words."""

    code: str
    cause: str
    hint: str
    permanent: bool

    def text(self) -> str:
        return f"{self.cause}\n{self.hint}" if self.hint else self.cause


@dataclass
class _Error:
    rule: Rule
    message: str
    copy: bool  # nexrender's copy of an AE line, used only when the line itself is missing
    order: int


# --- The reader ---------------------------------------------------------------------------


class AeOutput:
    """Follows one AE render through its output lines (aerender's, or nexrender's with
    aerender's echoed). Same interface as jobs.node.progress.FfmpegProgress.

    The total is, by preference: ``known_total`` (the job's frames_total, when it is
    known before the render), the job's ``frame_start``..``frame_end`` range
    (-s/-e/-i), then Duration x Frame Rate from the output.
    """

    def __init__(self, frame_start: int | None = None, frame_end: int | None = None,
                 frame_increment: int | None = None, known_total: int | None = None):
        self.frame_start = frame_start
        self.frame_end = frame_end
        self.frame_increment = max(1, int(frame_increment or 1))
        self.known_total = known_total if known_total and known_total > 0 else None
        self.fps: float | None = None
        self.times: list[tuple[str, str]] = []  # (label, value) of timecode settings
        self.frames_done = 0
        self.finished = False
        self.elapsed_seconds: int | None = None
        self.ae_version = ""
        self.last_ae_line = ""
        self.warnings: list[dict] = []
        self.first_frame_at: float | None = None
        self.first_counter = 0
        # What nexrender said about the end of the render.
        self.empty_output = ""
        self.no_update = ""
        self.spawn_error = ""
        self._errors: list[_Error] = []
        self._error_line = False  # the previous line was an error (it may continue)

    # --- input ----------------------------------------------------------------

    def feed(self, line: str, now: float | None = None) -> bool:
        """Take one output line; True when the progress, errors or warnings changed."""
        text = line.strip()
        if not text:
            return False
        continues = self._error_line and line.startswith("        ")
        self._error_line = False
        if text[0] in "[E-":
            text = WRAPPER.sub("", text)
            if text.startswith("[") and (match := NEXRENDER_LINE.match(text)):
                return self._nexrender(match.group(2))
        if text.startswith("PROGRESS:"):
            self.last_ae_line = text
            text = text[9:].lstrip()
        if not text:
            return False  # a prefix alone (DuME prints some)
        if "):" in text:
            counters = [int(match.group(6)) for match in FRAME.finditer(text)]
            if counters:
                return self._frames(max(counters), now)
        if text.startswith("WARNING:"):
            return self._warning(text)
        if ("rror" in text or "RROR" in text) and (changed := self._error(text)) is not None:
            return changed
        if continues and self._errors:
            # A message AE printed over two lines (the second indented).
            last = self._errors[-1]
            self._error_line = True
            if text in last.message:
                return False  # nexrender repeats the output when a render fails
            last.message = one_line(f"{last.message} {text}", MESSAGE_CHARS)
            return True
        if text.startswith("aerender version"):
            self.ae_version = VERSION.match(text).group(1)
            self.last_ae_line = text
            return False
        if "Finished composition" in text:
            self.finished = True
            return True
        if "Total Time Elapsed" in text:
            self.finished = True
            self.elapsed_seconds = elapsed_seconds(ELAPSED.search(text).group(1))
            return True
        # A setting worth reading ends in a timecode, a frame count or "(comp)".
        if not self.frames_done and (text[-1].isdigit() or text[-1] == ")") \
                and (match := SETTING.match(text)):
            return self._setting(match.group(1), match.group(2))
        return False

    def _frames(self, counter: int, now: float | None) -> bool:
        if counter <= self.frames_done:
            return False  # a repeated line (AE prints one twice, nexrender repeats all)
        now = time.monotonic() if now is None else now
        if self.first_frame_at is None:
            self.first_frame_at, self.first_counter = now, counter
        self.frames_done = counter
        return True

    def _setting(self, label: str, value: str) -> bool:
        key = label.strip().lower()
        if TIMECODE.match(value) or (key == "duration" and value.isdigit()):
            self.times.append((key, value))
            return True
        if self.fps is None and (match := RATE_VALUE.match(value)) and (
                key == "frame rate"
                or (key not in ENGLISH_TIMES and ("." in value[:8] or "," in value[:8]))):
            fps = float(match.group(1).replace(",", "."))
            if fps > 0:
                self.fps = fps
                return True
        return False

    def _nexrender(self, text: str) -> bool:
        if text.startswith("rendering reached an error:"):
            return self._add_error(text.split(":", 1)[1], copy=True)
        return False

    def _error(self, text: str) -> bool | None:
        """An error line: True/False when it was one (changed or not), None if not."""
        if match := AE_ERROR.search(text):
            syntax, number, message = match.groups()
            if syntax:
                message = f"SYNTAX ERROR: {message}"
            elif number:
                message = f"{number}: {message}" if number == "-1701" else \
                    f"{message} (error {number})"
            return self._add_error(message)
        if match := BARE_ERROR.match(text):
            return self._add_error(match.group(1))
        if "due to an unknown reason" in text:
            self.empty_output = text.removeprefix("Error:").strip()
            return False
        if "No update from aerender" in text or "Maximum rendering time exceeded" in text:
            self.no_update = text.removeprefix("Error:").strip()
            return False
        if "Error starting aerender process" in text:
            self.spawn_error = text.split("Error starting aerender process", 1)[1].strip(": ")
            return False
        return None

    def _add_error(self, message: str, copy: bool = False) -> bool:
        message = one_line(message.strip().removeprefix("After Effects error:").strip(),
                           MESSAGE_CHARS)
        if not message:
            return False
        self._error_line = True
        for seen in self._errors:
            if seen.message.startswith(message):
                return False
            if copy is False and seen.copy and seen.rule is rule_for(message):
                # The line nexrender had copied: keep AE's own wording.
                seen.message, seen.copy = message, False
                return True
        if len(self._errors) < MAX_ERRORS:
            self._errors.append(_Error(rule_for(message), message, copy, len(self._errors)))
        return True

    def _warning(self, text: str) -> bool:
        match = WARNING.match(text)
        if not match:
            return False
        body = match.group(2).strip()
        if logged := LOGGED_ERROR.search(body):
            message = logged.group(1).strip().strip('"“”')
            changed = self._add_error(message)
            if rule_for(message).code == "missing_footage":
                changed |= self.warn("missing_footage", message)
            return changed
        if font := FONT.search(body):
            layer, family, style = font.groups()
            where = f" ({layer.strip()})" if layer and layer.strip() else ""
            return self.warn("missing_font", f"Missing font: {family} {style}{where}")
        if "fontes ausentes" in body:  # pt-BR, from a real log (tests/data/aelogs/34_*)
            return self.warn("missing_font", body)
        if "warning" not in match.group(1):
            body = f"{match.group(1).strip()}: {body}"  # a localized label: keep it all
        return self.warn("ae_warning", GROUPED.sub("", body).strip() or body)

    def warn(self, code: str, message: str) -> bool:
        message = one_line(message, MESSAGE_CHARS)
        if len(self.warnings) >= MAX_WARNINGS or any(
                w["message"] == message for w in self.warnings):
            return False
        self.warnings.append({"code": code, "message": message})
        return True

    # --- results --------------------------------------------------------------

    @property
    def frames_total(self) -> int | None:
        if self.known_total:
            return self.known_total
        if self.frame_start is not None and self.frame_end is not None \
                and self.frame_end >= self.frame_start:
            return (self.frame_end - self.frame_start) // self.frame_increment + 1
        total = self._printed_total()
        if total and self.frame_increment > 1:
            total = math.ceil(total / self.frame_increment)
        return total or None

    def _printed_total(self) -> int | None:
        """Duration x Frame Rate; labels in English, else Start/End/Duration by position."""
        named = {key: value for key, value in self.times if key in ENGLISH_TIMES}
        if not named:
            by_place = zip(ENGLISH_TIMES, self.times, strict=False)
            named = {key: value for key, (_, value) in by_place}
        duration = named.get("duration")
        if duration is not None and duration.isdigit():
            return int(duration)
        if self.fps is None:
            return None
        if duration is not None:
            return self._frames_of(duration)
        if "start" in named and "end" in named:
            return self._frames_of(named["end"]) - self._frames_of(named["start"]) + 1
        return None

    def _frames_of(self, value: str) -> int:
        match = TIMECODE.match(value)
        hh, _, mm, ss, ff = match.groups()
        return timecode_frames(int(hh), int(mm), int(ss), int(ff), self.fps,
                               drop=";" in value)

    @property
    def phase(self) -> str:
        return Phase.RENDERING if self.frames_done or self.finished else Phase.SETTING_UP

    @property
    def percent(self) -> float:
        if self.finished:
            return 100.0
        total = self.frames_total
        if not total:
            return 0.0
        return min(100.0, 100.0 * self.frames_done / total)

    def eta_seconds(self, now: float | None = None) -> int | None:
        """Seconds left at the rate seen since the first frame; None before it is known."""
        if self.finished:
            return 0
        total = self.frames_total
        rendered = self.frames_done - self.first_counter
        if not total or self.first_frame_at is None or rendered < 1:
            return None
        now = time.monotonic() if now is None else now
        elapsed = now - self.first_frame_at
        if elapsed <= 0:
            return None
        return int(round(max(0, total - self.frames_done) * elapsed / rendered))

    @property
    def errors(self) -> list[str]:
        return [error.message for error in self._errors]

    @property
    def error(self) -> str:
        return "\n".join(self.errors)

    def worst_error(self, ignore: tuple[str, ...] = ()) -> _Error | None:
        candidates = [error for error in self._errors if error.rule.code not in ignore]
        if not candidates:
            return None
        return min(candidates, key=lambda e: (-e.rule.rank, e.copy, e.order))


# What nexrender itself prints when a render fails (the reader keeps each apart).
NEXRENDER_FAILURES = ("due to an unknown reason", "No update from aerender",
                      "Maximum rendering time exceeded", "Error starting aerender process")


def line_kind(line: str) -> str:
    """How a log viewer marks one output line: "error", "warning", "frame" or "",
    by the rules ``AeOutput.feed`` reads the same lines with."""
    text = line.strip()
    if not text:
        return ""
    if text[0] in "[E-":
        text = WRAPPER.sub("", text)
        if text.startswith("[") and (match := NEXRENDER_LINE.match(text)):
            return "error" if match.group(2).startswith("rendering reached an error:") else ""
    text = text.removeprefix("PROGRESS:").lstrip()
    if text.startswith("WARNING:"):
        match = WARNING.match(text)
        if match is None:
            return ""
        return "error" if LOGGED_ERROR.search(match.group(2)) else "warning"
    if ("rror" in text or "RROR" in text) and (
            AE_ERROR.search(text) or BARE_ERROR.match(text)
            or any(words in text for words in NEXRENDER_FAILURES)):
        return "error"
    if "):" in text and FRAME.search(text):
        return "frame"
    return ""


def elapsed_seconds(text: str) -> int | None:
    """``26 Hr, 15 Min``, ``1 Min, 28 Sec``, ``17 Seconds`` -> seconds."""
    parts = ELAPSED_PART.findall(text)
    if not parts:
        return None
    scale = {"hr": 3600, "min": 60, "sec": 1}
    return sum(int(number) * scale[unit.lower()] for number, unit in parts)


# --- The verdict ------------------------------------------------------------------------------


def judge(output: AeOutput, exit_code: int, has_output: bool, template: dict) -> Cause | None:
    """None when the attempt rendered the job; otherwise why not.

    A render is good only if it exited 0, left its output and AE reported no
    error, not even after "Total Time Elapsed"; missing footage fails it too
    unless the job asked for ``continueOnMissing`` (the warnings stay visible).
    """
    ignore = ("missing_footage",) if template.get("continueOnMissing") else ()
    if error := output.worst_error(ignore):
        hint = error.rule.hint.format(
            composition=template.get("composition", ""),
            templates=", ".join(f"“{template[key]}”" for key in (
                "settingsTemplate", "outputModule") if template.get(key)) or "none named")
        if "\ufffd" in error.message:
            hint = f"{hint} {UNDECODABLE}"
        return Cause(error.rule.code, _ae_words(error.message), hint, error.rule.permanent)
    if output.no_update:
        return Cause("stalled", f"nexrender stopped the render: {output.no_update}",
                     STALLED_HINT, False)
    if output.spawn_error:
        return Cause("ae_launch_failed", f"aerender could not be started: {output.spawn_error}",
                     "Check AERENDER_PATH on the render node.", False)
    if exit_code == 0 and has_output:
        return None
    last = f" (its last line: “{one_line(output.last_ae_line, 120)}”)" \
        if output.last_ae_line else ""
    if not output.frames_done and not output.finished:
        said = f"; nexrender: {output.empty_output}" if output.empty_output else ""
        version = f" {output.ae_version}" if output.ae_version else ""
        return Cause("ae_exited_silently",
                     f"After Effects{version} exited without rendering a frame and printed no "
                     f"error{last}{said}", SILENT_HINT, False)
    total = output.frames_total
    done = f"{output.frames_done} of {total}" if total else f"{output.frames_done}"
    if not output.finished:
        code = f" (the renderer exited with code {exit_code})" if exit_code else ""
        return Cause("crashed", f"After Effects stopped after frame {done} and printed no "
                     f"error{code}", CRASHED_HINT, False)
    if not has_output:
        return Cause("no_output", "After Effects finished the composition but there is no "
                     "result file", NO_OUTPUT_HINT, True)
    return Cause("crashed", f"The renderer exited with code {exit_code} after After Effects "
                 "finished the composition", CRASHED_HINT, False)


def _ae_words(message: str) -> str:
    if message.startswith(("After Effects", "nexrender", "SYNTAX")):
        return one_line(message if not message.startswith("SYNTAX")
                        else f"aerender {message}")
    if message.startswith("-1701"):
        return one_line(f"After Effects error {message}")
    return one_line(f"After Effects: {message}")


SILENT_HINT = ("Known causes: After Effects' licence on the node (sign in to Creative Cloud "
               "there), a Cinema 4D renderer without a Maxon licence, or -reuse while After "
               "Effects is open. The job is tried again.")
CRASHED_HINT = "After Effects crashed or was killed part way; the job is tried again."
STALLED_HINT = ("After Effects stopped printing (often a dialog waiting for an answer, or a "
                "plugin that hangs): look at the render node. The job is tried again.")
NO_OUTPUT_HINT = ("Check that the job's outputExt matches the format of its output module: "
                  "After Effects wrote its file under another name or not at all.")
