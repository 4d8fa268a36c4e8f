"""Who is asking: the rules every layer shares, below the console and the APIs.

* ``roles``: the console's roles and the permission checks views, admin and APIs ask through.
* ``client_ip``: the client's address by the project's one rule (``TRUSTED_PROXY_COUNT``).
* ``request_id``: the request id on every response, log record, run and intent.
"""
