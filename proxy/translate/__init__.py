"""Pure translators between the OpenAI chat, Anthropic Messages and Responses wire formats
(dict in, dict out, no I/O), and the stream state machines. "responses" in a module name always
means the Responses API.

requests.py               request entry points (+ request_to_openai.py, request_to_anthropic.py)
replies.py                whole (non-streaming) upstream replies: read as neutral events, rendered
                          once per client API by the accumulator
responses_api.py          Responses API entry points (+ responses_request.py,
                          responses_response.py, responses_tools.py, responses_dropped.py,
                          responses_shell.py: Codex's own tools' items as tool calls)
reasons.py                stop reasons (the tool-call rule) and usage, shared with the stream
                          state machines
errors_wire.py            error bodies in each dialect
dropped.py                what each direction leaves behind on purpose, and why
common.py                 helpers every direction shares
stream_*.py               streaming state machines (decoders and encoders per dialect)
accumulate.py             neutral events -> one complete response, and the chat.completion
                          envelope (whole replies, codex)
"""
