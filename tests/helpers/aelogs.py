"""Real aerender/nexrender output that users posted (tests/data/aelogs/, each file
names its source in its header), and the constructed samples beside them (their
header says so)."""

from __future__ import annotations

from pathlib import Path

AELOGS = Path(__file__).resolve().parents[1] / "data" / "aelogs"
SEPARATOR = "# ---"


def sample_path(prefix: str) -> Path:
    """The sample whose file name starts with ``prefix`` ("13_", "90_")."""
    [path] = sorted(AELOGS.glob(f"{prefix}*.log"))
    return path


def sample_lines(prefix: str) -> list[str]:
    """The log text of a sample (what follows its header), line by line."""
    text = sample_path(prefix).read_text(encoding="utf-8")
    header, separator, body = text.partition(f"\n{SEPARATOR}\n")
    assert separator and header.startswith("# "), f"{prefix}: no header"
    return body.splitlines()


def all_samples() -> list[str]:
    return sorted(path.name.split("_", 1)[0] + "_" for path in AELOGS.glob("*.log"))
