"""Refusing request bodies over ``[api] max_request_body_size`` with 413.

A declared length is checked before anything is read. A body without one
(chunked) is read through :class:`LimitingReader`, which fails as soon as
more than the limit has come in, so a client cannot make the API buffer
more than it allows by leaving the length out.
"""

import webob.dec

from snapmanager_nova.api import errors


def _too_large(limit, size=None):
    of_size = "" if size is None else f" of {size} bytes"
    return errors.HTTPError(
        413,
        f"Request body{of_size} is larger than the limit of {limit} bytes.",
    )


class LimitingReader:
    """A ``wsgi.input`` that raises once more than ``limit`` bytes are read.

    Raises the API's own error rather than a webob exception: webob's
    ``wsgify`` answers those itself, in plain text, before the JSON error
    layer could see them.
    """

    def __init__(self, stream, limit):
        self.stream = stream
        self.limit = limit
        self.bytes_read = 0

    def _count(self, data):
        self.bytes_read += len(data)
        if self.bytes_read > self.limit:
            raise _too_large(self.limit)
        return data

    def read(self, size=-1):
        if size is None or size < 0:
            # Never more than one byte past the limit, however much is
            # asked for: that byte is enough to know.
            size = self.limit + 1 - self.bytes_read
        return self._count(self.stream.read(max(size, 0)))

    def readline(self, size=-1):
        return self._count(self.stream.readline(size))

    def __iter__(self):
        while True:
            chunk = self.read(65536)
            if not chunk:
                return
            yield chunk


class BodySizeLimit:
    def __init__(self, application, limit):
        self.application = application
        self.limit = limit

    @webob.dec.wsgify
    def __call__(self, req):
        if req.content_length is not None:
            if req.content_length > self.limit:
                raise _too_large(self.limit, req.content_length)
        elif req.is_body_readable:
            req.body_file = LimitingReader(req.body_file_raw, self.limit)
        return req.get_response(self.application)
