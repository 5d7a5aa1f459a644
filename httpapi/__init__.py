"""httpapi: the HTTP plumbing Gallery and Studio share, so neither copies the other's.

    httpapi.errors    BadRequest (422), BodyTooLarge (413), Forbidden (403), TooManyRequests (429)
                      and `add_error_handlers`, the one
                      mapping from our errors (and the framework's) to HTTP statuses and
                      `{"detail": str}`; `refusals(...)` documents them on a route
    httpapi.body      BodyLimit, the request-body cap (ASGI middleware), DEFAULT_MAX_BODY_BYTES
    httpapi.forms     read_form: a multipart form within caps (422 beyond them); file_part:
                      exactly one file from a multipart form field
    httpapi.images    image_response: a stored image served with its type and cache header
    httpapi.metrics   Metrics (a Prometheus registry per app), HttpMetrics: latency by route template
    httpapi.logs      configure_logging (text or JSON lines), `about`: painting and job ids on each line

It may import `painting` (the storage errors it maps, the image store it serves from) and Starlette; never `gallery`,
`studio` or `pycasso`.
"""
