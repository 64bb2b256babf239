"""``limit`` and ``marker`` of list requests, and the link to the next page.

A page that came back full may have a successor: its response carries a
``<collection>_links`` list with a ``next`` link (the request's own query
with ``marker`` set to the last item), as Nova's and Cinder's lists do. A
page shorter than its limit is the last, and has no link.
"""

import urllib.parse

from snapmanager_nova import exception


def limit(params, max_limit):
    """The page size asked for in ``params``, or ``max_limit``."""
    text = params.get("limit")
    if text is None:
        return max_limit
    value = int(text)
    if not 1 <= value <= max_limit:
        raise exception.InvalidField(
            field="limit",
            reason=f"{text!r} is not between 1 and {max_limit}",
        )
    return value


def links(req, params, items, page_size, marker_of):
    """The ``next`` link of a page, in a list, or an empty list."""
    if len(items) < page_size:
        return []
    query = dict(params, limit=str(page_size), marker=marker_of(items[-1]))
    href = f"{req.path_url}?{urllib.parse.urlencode(sorted(query.items()))}"
    return [{"rel": "next", "href": href}]
