"""JSON nesting depth, counted on the raw bytes or text before parsing (one scanner for edge and model)."""

import pytest

from router import errors
from router.model import jsontext

LIMIT = "http.max_json_depth"


@pytest.mark.parametrize("body, deepest_allowed", [
    (b'{"a": [1, 2, {"b": 3}]}', 3),
    (b'[' * 64 + b']' * 64, 64),
    (b'{"s": "[[[[[[[[[[{{{{{{{{"}', 1),          # brackets in strings do not count
    (b'{"s": "\\"[[[[[[[[[[[["}', 1),            # nor after an escaped quote
    (b'[' * 5000 + b']' * 5000, 5000),
    (b'not json [[[[', 4),                       # not JSON is the parser's to refuse; depth is still counted
])
def test_json_depth(body, deepest_allowed):
    jsontext.check_depth(body, deepest_allowed, limit=LIMIT)
    if deepest_allowed > 1:
        with pytest.raises(errors.BadRequest) as caught:
            jsontext.check_depth(body, deepest_allowed - 1, limit=LIMIT)
        assert caught.value.limit == "http.max_json_depth"


def test_json_depth_of_a_large_shallow_body_is_cheap():
    body = b'{"items": [' + b",".join(b'{"k": "v"}' for _ in range(50_000)) + b"]}"
    jsontext.check_depth(body, 3, limit=LIMIT)
    with pytest.raises(errors.BadRequest):
        jsontext.check_depth(body, 2, limit=LIMIT)
