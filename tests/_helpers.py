"""Checks shared by several test files (imported by name: pytest puts this folder on ``sys.path``)."""

from htaf.__main__ import main


def one_line_exit_2(argv, capsys, *fragments):
    """``python -m htaf ARGV`` exits with status 2 and one ``error:`` line holding every fragment, no traceback."""
    assert main(argv) == 2
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in error, error
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
