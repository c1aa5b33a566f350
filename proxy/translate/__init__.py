"""Pure translators between the OpenAI and Anthropic wire formats (dict in, dict out, no I/O).

requests.py      request entry points (+ request_to_openai.py, request_to_anthropic.py)
responses.py     non-streaming responses
reasons.py       stop reasons and usage, shared with the stream state machines
errors_wire.py   error bodies in each dialect
dropped.py       what each direction leaves behind on purpose, and why
common.py        helpers both directions share
stream_*.py      streaming state machines
"""
