"""llmproxy: a local LLM routing proxy. The package map, by layer, from the client's side
inward (tests/test_architecture.py checks that this map names every module and that `proxy/`
has no import cycle).

HTTP edge        server.py (build_app: routes, middleware, the one outgoing client),
                 serving.py (DaemonRunner: the one way the app is put on a socket; JSON answers
                 to HTTP aiohttp cannot parse), memory.py (free memory back after a burst),
                 handlers.py, responses_handler.py (thin handlers), client_dialects.py (one
                 class per client API: validation, error bodies, stream encoders and their
                 error events), management.py,
                 management_rules.py, live.py, reload.py, appkeys.py, logging_setup.py
routing          summary.py (what routing reads of a request), routing.py, keywords.py,
                 ranking.py, capabilities.py, model_catalog.py, tokens.py (media_tokens.py:
                 images, PDFs, audio), conversation.py,
                 affinity.py
walk/failover    fallback.py (Walk: the loop over an immutable chain, its Ledger of attempts),
                 midstream.py (StreamLife: a stream's one owner, takeover and continuation),
                 health.py (breakers, cooldowns, live latency)
shared state     state/ ([state]: memory, or Redis shared by every instance: the Lua rate-limit
                 script, breaker/cooldown/probe/figure sync, affinity and config pub/sub)
providers        providers/ (one transport per provider format over the shared client; the
                 boundary mapping its errors), classify.py (status and body -> ErrorClass, the only
                 reader of error wording), codex_auth.py
wire formats     exchange.py (the client x provider matrix), translate/ (pure translators, the
                 neutral stream events' decoders, encoders and accumulator), sse.py (framing)
config           config/ (load, expand $VAR, validate), config_writer.py
security         security/ (client keys, limits, rate limits, SSRF guard, rejections as JSON,
                 the one outgoing HTTP client)
observation      observe/ (the request record at the end of every request and its sinks: the
                 log line, the journal, metrics, cost, the /ui status page, optional tracing)
simulation       simulate/ (simulated providers: real HTTP servers), e2e.py, e2e_judge.py,
                 daemon_client.py (a client of the daemon, for the CLI and e2e),
                 loop_thread.py (an async context kept open on its own loop, for sync callers:
                 the CLI's in-process app and the tests)
everywhere       types.py (frozen values, the neutral stream events), errors.py (the one error
                 tree), frozen.py (@frozen: how the frozen values are made; its generated
                 _frozen_shapes.py)
"""
