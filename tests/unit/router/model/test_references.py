"""Digests out of every spelling users and CDEvents hand over, and image references per the grammar.

``REFERENCES`` are the vectors of the distribution project's ``TestReferenceParse``
(``github.com/distribution/reference``, ``reference_test.go``), rewritten as a table: the input, then
the domain, the name, the tag and the digest it parses into, or the reason it is refused. The Go
errors map to this module's reasons: ``ErrNameEmpty`` -> ``EMPTY``, ``ErrReferenceInvalidFormat`` ->
``INVALID_FORMAT``, ``ErrNameContainsUppercase`` -> ``NAME_UPPERCASE``, ``ErrNameTooLong`` ->
``NAME_TOO_LONG``, ``digest.ErrDigestInvalidLength`` -> ``DIGEST_LENGTH``,
``digest.ErrDigestUnsupported`` -> ``DIGEST_UNSUPPORTED`` (only sha256 is registered, there and here).
"""

from __future__ import annotations

import pytest

from router import plugins
from router.model import references

F64 = "sha256:" + "f" * 64
HEX = "5e" * 32
DIGEST = f"sha256:{HEX}"

REFERENCES = [
    # input, domain, name, tag, digest (a reason constant in the domain column: refused with it)
    ("test_com", "", "test_com", None, None),
    ("test.com:tag", "", "test.com", "tag", None),
    ("test.com:5000", "", "test.com", "5000", None),
    ("test.com/repo:tag", "test.com", "test.com/repo", "tag", None),
    ("test:5000/repo", "test:5000", "test:5000/repo", None, None),
    ("test:5000/repo:tag", "test:5000", "test:5000/repo", "tag", None),
    (f"test:5000/repo@{F64}", "test:5000", "test:5000/repo", None, F64),
    (f"test:5000/repo:tag@{F64}", "test:5000", "test:5000/repo", "tag", F64),
    ("", references.EMPTY, None, None, None),
    (":justtag", references.INVALID_FORMAT, None, None, None),
    (f"@{F64}", references.INVALID_FORMAT, None, None, None),
    ("repo@sha256:" + "f" * 34, references.DIGEST_LENGTH, None, None, None),
    ("validname@invaliddigest:" + "f" * 64, references.DIGEST_UNSUPPORTED, None, None, None),
    ("validname@sha512:" + "f" * 128, references.DIGEST_UNSUPPORTED, None, None, None),
    ("Uppercase:tag", references.NAME_UPPERCASE, None, None, None),
    ("test:5000/Uppercase/lowercase:tag", references.NAME_UPPERCASE, None, None, None),
    ("lowercase:Uppercase", "", "lowercase", "Uppercase", None),
    ("domain/" + "a" * 256 + ":tag", references.NAME_TOO_LONG, None, None, None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a", "a/" * 127 + "a", "tag-puts-this-over-max", None),
    ("aa/asdf$$^/aa", references.INVALID_FORMAT, None, None, None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "sub-dom1.foo.com/bar/baz/quux", None, None),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "sub-dom1.foo.com/bar/baz/quux",
     "some-long-tag", None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "b.gcr.io/test.example.com/my-app",
     "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{F64}", "xn--7o8h.com", "xn--7o8h.com/myimage", "xn--7o8h.com", F64),
    ("foo_bar.com:8080", "", "foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "foo", "foo/foo_bar.com", "8080", None),
    ("192.168.1.1", "", "192.168.1.1", None, None),
    ("192.168.1.1:tag", "", "192.168.1.1", "tag", None),
    ("192.168.1.1:5000", "", "192.168.1.1", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1", "192.168.1.1/repo", None, None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000", "192.168.1.1:5000/repo", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "192.168.1.1:5000/repo", "5050", None),
    ("[2001:db8::1]", references.INVALID_FORMAT, None, None, None),
    ("[2001:db8::1]:5000", references.INVALID_FORMAT, None, None, None),
    ("[2001:db8::1]:tag", references.INVALID_FORMAT, None, None, None),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "[2001:db8::1]/repo", None, None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "[2001:db8:1:2:3:4:5:6]/repo", "tag", None),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "[2001:db8::1]:5000/repo", None, None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000", "[2001:db8::1]:5000/repo", "tag", None),
    (f"[2001:db8::1]:5000/repo@{F64}", "[2001:db8::1]:5000", "[2001:db8::1]:5000/repo", None, F64),
    (f"[2001:db8::1]:5000/repo:tag@{F64}", "[2001:db8::1]:5000", "[2001:db8::1]:5000/repo", "tag", F64),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "[2001:db8::]:5000/repo", None, None),
    ("[::1]:5000/repo", "[::1]:5000", "[::1]:5000/repo", None, None),
    ("[fe80::1%eth0]:5000/repo", references.INVALID_FORMAT, None, None, None),
    ("[fe80::1%@invalidzone]:5000/repo", references.INVALID_FORMAT, None, None, None),
    ("example.com/" + "a" * 255 + ":tag", "example.com", "example.com/" + "a" * 255, "tag", None),
    # Beyond the Go vectors: what Python's regular expressions would let through unless told not to.
    ("web:1.0\n", references.INVALID_FORMAT, None, None, None),  # `$` matches before a final newline
    ("web:１", references.INVALID_FORMAT, None, None, None),  # `\w` is Unicode in Python, ASCII in Go
    (f"web@sha256:{HEX.upper()}", references.DIGEST_FORMAT, None, None, None),
]
REASONS = {references.EMPTY, references.INVALID_FORMAT, references.NAME_UPPERCASE, references.NAME_TOO_LONG,
           references.DIGEST_LENGTH, references.DIGEST_UNSUPPORTED, references.DIGEST_FORMAT}


@pytest.mark.parametrize("text,domain,name,tag,digest", REFERENCES, ids=[r[0][:60] for r in REFERENCES])
def test_image_references_parse_per_the_distribution_grammar(text, domain, name, tag, digest):
    if domain in REASONS:
        with pytest.raises(references.InvalidReference) as refused:
            references.parse_image(text)
        assert refused.value.reason == domain
        return
    parsed = references.parse_image(text)
    assert (parsed.domain, parsed.name, parsed.tag, parsed.digest) == (domain, name, tag, digest)
    assert str(parsed) == text


ACCEPTED = {
    "bare": DIGEST,
    "percent-encoded": f"sha256%3A{HEX}",
    "percent-encoded, lower-case escape": f"sha256%3a{HEX}",
    "purl as CDEvents writes it": f"pkg:oci/web@sha256%3A{HEX}?repository_url=registry.example.com/acme/web&tag=1.0",
    "purl as trigger-router writes it": f"pkg:oci/web@{DIGEST}?repository_url=registry.example.com/acme/web",
    "docker purl": f"pkg:docker/acme/web@sha256%3A{HEX}",
    # The purl spec makes an oci version case-insensitive and lower-cased; the library applies it.
    "oci purl in capitals": f"pkg:oci/web@SHA256%3A{HEX.upper()}",
    "image by digest": f"registry.example.com/acme/web@{DIGEST}",
    "image by tag and digest": f"registry.example.com:5000/acme/web:1.0@{DIGEST}",
}


@pytest.mark.parametrize("value", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_every_spelling_of_a_digest_gives_the_canonical_one(value):
    assert references.digest(value) == DIGEST


REFUSED = {
    # name: (value, words the error must contain besides the value itself)
    "empty": ("", ["empty"]),
    "null": (None, ["null"]),
    "a number": (5, ["type int"]),
    "a bare tag": ("latest", ["a tag is not a digest"]),
    "a tag-only reference": ("registry.example.com/acme/web:1.0", ["tag '1.0'", "no @sha256"]),
    "a purl without a version": ("pkg:oci/web?repository_url=registry.example.com/acme/web&tag=1.0",
                                 ["purl without a version"]),
    "a purl whose version is a tag": ("pkg:oci/web@1.0", ["version '1.0' is not a digest"]),
    "a purl double-encoded": (f"pkg:oci/web@sha256%253A{HEX}", ["version 'sha256%3"]),
    "a generic purl in capitals": (f"pkg:generic/web@sha256:{HEX.upper()}", ["invalid digest format"]),
    "not a purl": ("pkg:", ["not a valid purl"]),
    "sha512": ("sha512:" + "ab" * 64, ["unsupported digest algorithm"]),
    "sha256 in capitals": (f"SHA256:{HEX}", ["unsupported digest algorithm"]),
    "too short": ("sha256:" + HEX[:40], ["invalid digest length"]),
    "too long": (DIGEST + "00", ["invalid digest length"]),
    "a newline after it": (DIGEST + "\n", ["invalid digest length"]),
    "upper-case hex": (f"sha256:{HEX.upper()}", ["invalid digest format"]),
    "upper-case hex, percent-encoded": (f"sha256%3A{HEX.upper()}", ["invalid digest format"]),
    "not hex": ("sha256:" + "g" * 64, ["invalid digest format"]),
    "a digest inside a reference, too short": ("web@sha256:" + "f" * 34, ["invalid digest length"]),
    "garbage": ("!!not a thing!!", ["neither a digest, a purl nor an image reference"]),
    "an unrendered template": ("{{ data.digest }}", ["neither a digest"]),
}


@pytest.mark.parametrize("value,words", REFUSED.values(), ids=REFUSED.keys())
def test_anything_else_is_refused_naming_the_value(value, words):
    with pytest.raises(references.NotADigest) as refused:
        references.digest(value)
    message = str(refused.value)
    assert message.startswith(f"{value!r} is not a sha256 digest: "), message
    assert refused.value.value == value
    for word in words:
        assert word in message, message


def test_a_huge_value_is_named_but_not_copied_whole():
    with pytest.raises(references.NotADigest) as refused:
        references.digest("x" * 100_000)
    assert len(str(refused.value)) < 400 and "(100002 characters)" in str(refused.value)


def test_plugins_reach_it_through_the_surface():
    assert "references" in plugins.__all__ and plugins.references.digest(f"sha256%3A{HEX}") == DIGEST
