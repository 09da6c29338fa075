"""The one place that reads a digest out of what a rule or an event hands over: parsed, never guessed.

A digest reaches trigger-router in several spellings: bare (``sha256:<hex>``), percent-encoded as
CDEvents' own examples write it inside purls (``sha256%3A<hex>``), as the version of a purl
(``pkg:oci/web@sha256%3A<hex>?repository_url=...``), or at the end of an image reference
(``host/path:tag@sha256:<hex>``). :func:`digest` accepts exactly these and answers the canonical
``sha256:<64 lowercase hex>``; anything else, the empty string and a tag above all, raises
:class:`NotADigest` naming the value. Callers that asked for a digest must fail on it: "not a
digest, so no pin" would run whatever the tag points to now, the very substitution a digest pins
against.

Purls are parsed by ``packageurl-python``. Image references are parsed by :func:`parse_image`,
written here after the grammar of the distribution project (``github.com/distribution/reference``,
``reference.go`` and ``regexp.go``) and tested with that project's vectors; like its ``Parse`` with
only sha256 registered, it accepts no other digest algorithm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packageurl import PackageURL

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_PERCENT_ENCODED = re.compile(r"sha256%3[aA]")  # RFC 3986: either case of hex in an escape

# The reference grammar, one production per name (ASCII only, as in Go's regexp: `\w` would
# admit any Unicode letter in Python). Every pattern is used with fullmatch: Python's `$` would
# also match before a final newline.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_ANY_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?:({_DOMAIN})/)?({_REMOTE_NAME})(?::({_TAG}))?(?:@({_ANY_DIGEST}))?")
_DIGEST_SHAPED = re.compile(_ANY_DIGEST)

MAX_PATH_LENGTH = 255
"""Characters in a repository path (the name without its domain), as the distribution project counts."""

# What parse_image can say is wrong, one reason per error of the distribution project's Parse.
EMPTY = "empty"
INVALID_FORMAT = "invalid reference format"
NAME_UPPERCASE = "repository name must be lowercase"
NAME_TOO_LONG = f"repository name must not be more than {MAX_PATH_LENGTH} characters"
DIGEST_UNSUPPORTED = "unsupported digest algorithm (only sha256)"
DIGEST_LENGTH = "invalid digest length (sha256 has 64 hex digits)"
DIGEST_FORMAT = "invalid digest format (lowercase hex digits)"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:160]}... ({len(text)} characters)"


class InvalidReference(ValueError):
    """``value`` is not an image reference; ``reason`` is one of this module's reason constants."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"{_shown(value)} is not an image reference: {reason}")


class NotADigest(ValueError):
    """A digest was asked for and ``value`` is none; the message names the value and why."""

    def __init__(self, value: object, why: str) -> None:
        self.value = value
        self.why = why
        super().__init__(f"{_shown(value)} is not a sha256 digest: {why}")


@dataclass(frozen=True, slots=True)
class ImageReference:
    """``[domain/]path[:tag][@digest]``; ``digest``, when present, is a canonical sha256 digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def _digest_problem(algorithm: str, encoded: str) -> str | None:
    """What keeps ``algorithm:encoded`` from being a canonical sha256 digest (None: nothing)."""
    if algorithm != "sha256":
        return DIGEST_UNSUPPORTED
    if len(encoded) != 64:
        return DIGEST_LENGTH
    if not re.fullmatch(r"[0-9a-f]{64}", encoded):
        return DIGEST_FORMAT
    return None


def parse_image(text: str) -> ImageReference:
    """An image reference per the distribution grammar; raises :class:`InvalidReference`."""
    if not text:
        raise InvalidReference(text, EMPTY)
    found = _REFERENCE.fullmatch(text)
    if found is None:
        # Parsing again in lower case tells a name with capitals from garbage, as the Go parser does.
        reason = NAME_UPPERCASE if text.lower() != text and _REFERENCE.fullmatch(text.lower()) else INVALID_FORMAT
        raise InvalidReference(text, reason)
    domain, path, tag, digest = found.groups()
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidReference(text, NAME_TOO_LONG)
    if digest is not None:
        problem = _digest_problem(*digest.split(":", 1))
        if problem:
            raise InvalidReference(text, problem)
    return ImageReference(domain or "", path, tag, digest)


def _checked(value: str, candidate: str) -> str:
    algorithm, _, encoded = candidate.partition(":")
    problem = _digest_problem(algorithm, encoded)
    if problem:
        raise NotADigest(value, problem)
    return candidate


def _from_purl(value: str) -> str:
    try:
        purl = PackageURL.from_string(value)
    except ValueError as exc:
        raise NotADigest(value, f"not a valid purl ({exc})") from exc
    if not purl.version:
        raise NotADigest(value, "a purl without a version (@sha256:<hex>)")
    if ":" not in purl.version:
        raise NotADigest(value, f"a purl whose version {purl.version!r} is not a digest")
    return _checked(value, purl.version)  # the library has already percent-decoded it


def digest(value: object) -> str:
    """The canonical ``sha256:<hex>`` that ``value`` names; raises :class:`NotADigest`.

    Accepted: a bare digest, ``sha256%3A<hex>``, a purl whose version is a digest, an image
    reference ending in ``@sha256:<hex>``. Refused with the reason: anything not text, the empty
    string, a tag or tag-only reference, another algorithm, a wrong length, upper-case hex.
    """
    if not isinstance(value, str):
        raise NotADigest(value, "null" if value is None else f"a value of type {type(value).__name__}, not text")
    if not value:
        raise NotADigest(value, "empty")
    if _SHA256.fullmatch(value):
        return value
    if value.startswith("pkg:"):
        return _from_purl(value)
    if _PERCENT_ENCODED.match(value):
        return _checked(value, "sha256:" + value[len("sha256%3A"):])
    if _DIGEST_SHAPED.fullmatch(value) or value.lower().startswith(("sha256:", "sha384:", "sha512:")):
        return _checked(value, value)
    try:
        reference = parse_image(value)
    except InvalidReference as exc:
        why = exc.reason if exc.reason in (DIGEST_UNSUPPORTED, DIGEST_LENGTH, DIGEST_FORMAT) else \
            f"neither a digest, a purl nor an image reference ({exc.reason})"
        raise NotADigest(value, why) from exc
    if reference.digest is None:
        if reference.tag:
            raise NotADigest(value, f"an image reference with tag {reference.tag!r} and no @sha256:<hex>")
        raise NotADigest(value, "a name or tag without @sha256:<hex> (a tag is not a digest)")
    return reference.digest


def digest_or_template(value: str | None) -> str | None:
    """For an action's parameter model: :func:`digest`, except that a ``{{ }}`` template passes as it is.

    Parameters are validated twice: at rule load with their templates unrendered, and after each
    rendering. A literal that is no digest is thus refused at load; a template is checked once it has
    rendered, and renders to the canonical digest. Only a value explicitly given reaches this
    (pydantic does not validate defaults), so an absent field stays ``None``: no digest asked for.
    """
    if value is not None and "{{" in value:
        return value
    return digest(value)


def is_sha256(value: object) -> bool:
    """Whether ``value`` is already a canonical ``sha256:<64 lowercase hex>`` digest."""
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))
