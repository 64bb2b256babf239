"""Errors of the schedule engine.

Both carry the name of the offending field and a message that quotes the
bad token, so the API can answer ``400 Bad Request`` with a text a tenant
can act on and the CLI can print it as it is.
"""


class SpecError(ValueError):
    """A schedule spec, or its timezone, is not valid.

    ``str(error)`` is ``"<field>: <message>"``; ``field`` and ``message``
    are kept as attributes for callers that present them separately.
    """

    def __init__(self, field, message):
        # Both go to ValueError's args so the error pickles and copies
        # (oslo.messaging serialises exceptions it carries).
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self):
        return f"{self.field}: {self.message}"


class RetentionError(SpecError):
    """A retention policy is not valid."""
