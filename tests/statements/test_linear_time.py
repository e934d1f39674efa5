"""Every pattern that sees a document's text runs in linear time: the worst lines known are timed here.

Before, "EMBARGOED: a", 3,000 spaces and "b" took 40 s to reject, growing as the cube of the length. The bound
below is loose on purpose (a slow machine passes it by far); what it catches is the return of backtracking.
"""

import time

import pytest

from distributor.errors import InputError
from distributor.statements import plaintext
from distributor.statements.times import parse_embargo_line

N = 100_000
WORST = [
    "EMBARGOED: a" + " " * N + "b",
    "EMBARGOED: " + "a " * N + "!",
    "**EMBARGOED: " + "*" * N + "x",
    "EMBARGOED" + " " * N + ":" + " " * N + "x",
    " " * N + "x",
    "Index: a" + " - " * N,
    "Index:" + " -" * N + "x",
    "Index: " + " " * N + "x",
    "a" + " " * N + "a",
    "a." * N,
    "1" * N + "x",
]


@pytest.mark.parametrize("line", WORST, ids=[f"worst{i}" for i in range(len(WORST))])
def test_the_worst_lines_are_read_or_refused_in_linear_time(line):
    started = time.process_time()
    try:
        parse_embargo_line(line)
    except ValueError:
        pass
    document = f"Press Release\n\n14 October 2026\n\n{line}\n\nTitle\n\nBody.\n".encode()
    try:
        plaintext.parse(document, "worst.txt")
    except InputError:
        pass
    assert time.process_time() - started < 2.0
