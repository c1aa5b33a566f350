"""What several llmproxy processes share: `[state] backend = "memory"` (this process only) or
`"redis"` (rate limits, breakers, cooldowns, probes, health figures, prompt-cache affinity and
management changes, through one Redis). See `backend.open_state`."""

WORKER_ENV = "LLMPROXY_WORKER"
"""Set by `serve --workers N` in each worker's environment: its index, from 1."""
