"""Validating request bodies and query strings with JSON Schema.

Every schema is strict: ``additionalProperties`` is false, so a field or
query parameter the API does not know is refused rather than silently
ignored (a misspelt ``keep_after_delet`` must not quietly mean false).
Errors name the field by its path in the document (``schedules[0].spec``)
and quote the bad value, so a tenant can find what to fix.
"""

import json

import jsonschema

from snapmanager_nova import exception
from snapmanager_nova.api import errors
from snapmanager_nova.api import responses

_VALIDATOR = jsonschema.Draft202012Validator

# Of two errors at one place, an unknown field is reported first: it is
# usually a misspelt known field, which then also shows up as missing.
_RELEVANCE = jsonschema.exceptions.by_relevance(
    strong=frozenset(["additionalProperties"])
)

# Long values are cut in messages: the message is for finding the field,
# and echoing a megabyte of input back helps nobody.
_MAX_SHOWN = 80

# The deepest a request body may nest arrays and objects. The API's own
# documents need 4 (a policy, its schedules, one, its retention); the
# margin is generous. Deeper input would otherwise reach Python's
# recursion limit in the JSON parser or the schema validator: a 500.
MAX_DEPTH = 32


def show(value):
    """A value as a message quotes it: strings in quotes, the rest as JSON."""
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return text


def field_path(root, path):
    """``("schedules", 0, "spec")`` as ``schedules[0].spec``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or root


def _message(error, root, noun):
    path = field_path(root, error.absolute_path)
    value = error.instance
    schema = error.schema
    validator = error.validator
    if validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(known))
        name = field_path(root, [*error.absolute_path, unknown[0]])
        return name, (f"unknown {noun} (known: {', '.join(known) or 'none'})")
    if validator == "required":
        missing = [name for name in schema["required"] if name not in value]
        return field_path(root, [*error.absolute_path, missing[0]]), (
            "is required"
        )
    if validator == "type":
        return path, f"{show(value)} is not of type {schema['type']}"
    if validator == "enum":
        choices = ", ".join(str(choice) for choice in schema["enum"])
        return path, f"{show(value)} is not one of {choices}"
    if validator == "pattern" and "description" in schema:
        return path, f"{show(value)} is not {schema['description']}"
    if validator == "maxLength":
        return path, (
            f"{show(value)} is longer than {schema['maxLength']} characters"
        )
    if validator == "maxItems":
        return path, f"has more than {schema['maxItems']} items"
    if validator == "minItems":
        return path, f"needs at least {schema['minItems']} item(s)"
    return path, error.message


def validate(schema, document, root="body", noun="field"):
    """Check ``document`` against ``schema``; raise InvalidField if not.

    Of several errors the most relevant one (jsonschema's ``best_match``)
    is reported, so the answer is the same on every run.
    """
    error = jsonschema.exceptions.best_match(
        _VALIDATOR(schema).iter_errors(document), key=_RELEVANCE
    )
    if error is not None:
        field, reason = _message(error, root, noun)
        raise exception.InvalidField(field=field, reason=reason)
    return document


def json_body(req, schema, required=True):
    """The request's JSON body, validated; None if empty and optional.

    The size was already checked by the body size limit. A body that is
    not ``application/json`` is 415, one that does not parse 400.
    """
    body = req.body
    if not body.strip():
        if required:
            raise exception.InvalidField(
                field="body", reason="a JSON object is required"
            )
        return None
    if req.content_type != responses.JSON_TYPE:
        raise errors.HTTPError(
            415,
            f"Content-Type {req.content_type or '(none)'!r} is not "
            f"supported; send {responses.JSON_TYPE}.",
        )
    charset = req.charset or "utf-8"
    try:
        text = body.decode(charset)
    except LookupError:
        # Not a codec Python knows, or one that is not a text encoding
        # (``base64``): the client's header is wrong, not the server.
        raise errors.HTTPError(
            415,
            f"Content-Type charset {show(charset)} is not supported; "
            "send UTF-8.",
        ) from None
    except UnicodeDecodeError as exc:
        raise exception.InvalidField(
            field="body", reason=f"malformed JSON: {exc}"
        ) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise exception.InvalidField(
            field="body", reason=f"malformed JSON: {exc}"
        ) from None
    except RecursionError:
        document = None
    if document is None or _depth_exceeds(document, MAX_DEPTH):
        raise exception.InvalidField(
            field="body", reason=f"is nested deeper than {MAX_DEPTH} levels"
        )
    return validate(schema, document)


def _depth_exceeds(document, limit):
    """Whether ``document`` nests arrays and objects deeper than ``limit``.

    Iterative, so a document too deep for the recursion limit is measured
    too.
    """
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((item, depth + 1) for item in value)
    return False


def query(req, schema):
    """The query string as a dict of strings, validated.

    A parameter given twice is refused: which of the two would win is
    nobody's guess to make.
    """
    params = {}
    for name, value in req.GET.items():
        if name in params:
            raise exception.InvalidField(
                field=name, reason="is given more than once"
            )
        params[name] = value
    return validate(schema, params, root="query", noun="query parameter")
