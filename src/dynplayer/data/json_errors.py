"""What is wrong with a JSON text that `json.loads` refused, in one line: a syntax error, an
integer too long for Python (over 4,300 digits: a ValueError, not a JSONDecodeError) or nesting
too deep to parse (a RecursionError). Readers catch `JSON_ERRORS` and report `json_problem`."""

from __future__ import annotations

import json

JSON_ERRORS = (ValueError, RecursionError)  # JSONDecodeError is a ValueError


def json_problem(exc: BaseException) -> str:
    """'malformed JSON: ...' for any of `JSON_ERRORS`."""
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg} (column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "malformed JSON: nested too deeply"
    if "integer string conversion" in str(exc):
        return "malformed JSON: an integer with more than 4,300 digits"
    return f"malformed JSON: {exc}"
