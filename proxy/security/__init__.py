"""What keeps llmproxy safe with its defaults and under hostile input.

settings.py    typed `[security]` and `[management]` config (read by proxy.config)
auth.py        client keys (constant-time), the loopback-only rule without keys
ratelimit.py   token buckets per client key and global, behind the `RateLimiter` protocol
ssrf.py        which provider URLs and addresses may be reached
resolver.py    the same rules applied to every address actually connected to
outgoing.py    the one factory for outgoing clients: guarded, no redirects, no cookies
http1.py       the outgoing HTTP/1.1 client itself (asyncio protocol, httptools, a keep-alive pool)
http1_wire.py  what that client writes and reads apart from the socket: request heads, answer bodies
limits.py      body size, read timeout, JSON depth and encoding of incoming requests
rejections.py  every rejection of ours as JSON in the client's own dialect
html.py        the only way to build an HTML page: escaped values, restrictive CSP
"""
