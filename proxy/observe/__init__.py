"""Seeing what every request did.

One hook closes each generation request (`middleware.observe_middleware`): it turns the request's
`Trace` into one immutable `RequestRecord` and hands it to the sinks, each off the request's way:

- `logline`: one line at info (text or JSON), never prompts, answers or keys;
- `journal`: SQLite rows written in batches by a background thread (`llmproxy logs`, `usage`);
- `metrics`: Prometheus counters and histograms (`GET /metrics`);
- `recent`: the last requests in memory, for the status page (`GET /ui`);
- `tracing`: OpenTelemetry spans, when the `otel` extra is installed and an endpoint is set.

`cost` prices a record's usage from the capability table; `web` serves the read-outs.
"""
