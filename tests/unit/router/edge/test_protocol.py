"""What the edge says about requests aiohttp cannot parse: a fixed description, never the bytes received."""

import pytest
from aiohttp import http_exceptions

from router.edge import protocol

SECRET = "Bearer s3cr3t"


@pytest.mark.parametrize("exc, said, limit", [
    (http_exceptions.LineTooLong(f"Authorization: {SECRET}", "8190"), "longer than 8190 bytes", "max_line_bytes"),
    (http_exceptions.BadHttpMethod(f"G(T {SECRET}"), "method is not valid", None),
    (http_exceptions.BadHttpMessage("Duplicate Content-Length"), "Content-Length", None),
    (http_exceptions.BadHttpMessage("Transfer-Encoding can't be present with Content-Length"),
     "Transfer-Encoding", None),
    (http_exceptions.TransferEncodingError("Invalid character in chunk size"), "chunk", None),
    (http_exceptions.BadHttpMessage("Too many headers received"), "more than 128 headers", "max_headers"),
    (http_exceptions.InvalidHeader(f"X-Token: {SECRET}\x01"), "header", None),
    (http_exceptions.BadStatusLine(f"{SECRET} HTTP/9"), "request line is malformed", None),
    (None, "not valid HTTP/1.1", None),
])
def test_describe_never_quotes_the_request(exc, said, limit):
    detail, named = protocol.describe(exc)
    assert said in detail and named == limit
    assert "s3cr3t" not in detail


def test_the_error_body_shape():
    response = protocol.json_error(413, "too big", field="type", limit="max_subject_bytes")
    assert response.status == 413 and response.content_type == "application/json"
    assert response.text == ('{"error": "payload too large", "detail": "too big", "field": "type", '
                             '"limit": "max_subject_bytes"}')
