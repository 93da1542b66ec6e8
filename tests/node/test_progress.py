"""The capped render log. (After Effects' output is read in test_ae_output.py.)"""

from __future__ import annotations

from jobs.models import JobLog
from jobs.node.progress import LogBuffer

# --- LogBuffer ----------------------------------------------------------------


def test_log_buffer_keeps_everything_while_it_fits():
    log = LogBuffer(1000)
    log.extend(["one", "two\n", "three"])
    assert log.head == "one\ntwo\nthree\n"
    assert log.tail == ""
    assert log.omitted_bytes == 0
    assert log.text() == "one\ntwo\nthree\n"


def test_log_buffer_keeps_head_and_tail_and_counts_the_rest():
    log = LogBuffer(10_000)
    lines = [f"line {i:06d} " + "x" * 80 for i in range(10_000)]
    log.extend(lines)
    total = sum(len(line) + 1 for line in lines)
    head, tail = log.head, log.tail
    assert head.startswith("line 000000 ")
    assert tail.endswith("line 009999 " + "x" * 80 + "\n")
    assert len(head.encode()) <= 5000 and len(tail.encode()) <= 5000
    assert len(head) + len(tail) + log.omitted_bytes == total
    assert log.total_bytes == total
    # The same shape as the JobLog row it fills.
    row = JobLog(head=head, tail=tail, omitted_bytes=log.omitted_bytes)
    assert f"[... {log.omitted_bytes} bytes of log omitted ...]" in row.text()


def test_log_buffer_counts_bytes_of_non_ascii_text_and_huge_lines():
    log = LogBuffer(10_000)
    log.append("é" * 3000)  # 6000 bytes: does not fit the 5000-byte head
    assert log.head == ""
    assert len(log.tail.encode()) <= 5000
    log.append("ü" * 10_000)  # bigger than the whole tail: its end is kept
    assert log.tail.endswith("ü\n")
    assert len(log.tail.encode()) <= 5000
    assert log.omitted_bytes + len(log.tail.encode()) == 6001 + 20_001


def test_log_buffer_add_splits_a_block_of_lines():
    earlier = LogBuffer(10_000)
    earlier.extend(f"old line {i} " + "y" * 90 for i in range(500))
    log = LogBuffer(10_000)
    log.add(earlier.text())
    log.add("new line")
    assert log.head.startswith("old line 0 ")
    assert log.tail.endswith("new line\n")
    assert log.omitted_bytes > 0
