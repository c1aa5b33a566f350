"""What a request cost, from its usage and the served model's prices (USD per million tokens).

Cache reads and writes are priced at their own rates when the capability table or the config
knows them; an unknown cache rate is charged as ordinary input, so a cost is never understated
for want of a discount. Unknown input or output prices make the cost unknown (None), not zero.
"""

from __future__ import annotations

from proxy.capabilities import ModelCapabilities
from proxy.types import Usage

PER_TOKEN = 1e-6


def usage_cost(usage: Usage, caps: ModelCapabilities) -> float | None:
    if caps.price_in is None or caps.price_out is None:
        return None
    cache_read = caps.price_in if caps.price_cache_read is None else caps.price_cache_read
    cache_write = caps.price_in if caps.price_cache_write is None else caps.price_cache_write
    dollars = (
        usage.input_tokens * caps.price_in
        + usage.output_tokens * caps.price_out
        + usage.cache_read_input_tokens * cache_read
        + usage.cache_creation_input_tokens * cache_write
    ) * PER_TOKEN
    return round(dollars, 10)


DECIMALS = tuple((10.0**-k, f".{2 + k}f") for k in range(3, 11))
"""Below a cent, the first power of ten a cost reaches (from 1e-3 down) and the decimals that
show three significant digits from there."""


def format_cost(cost: float | None) -> str:
    """`$0.0123`, `$0.0000271` (three significant digits below a cent), `-` when unknown."""
    if cost is None:
        return "-"
    if cost >= 0.01 or cost == 0:
        return f"${cost:.4f}"
    # A scan from the top, not a bisect: a request's cost is mostly a few thousandths of a
    # cent, two or three comparisons down, and this runs for every request line.
    for bound, spec in DECIMALS:
        if cost >= bound:
            return f"${cost:{spec}}"
    return f"${cost:.12f}"


def cost_value(cost: float | None) -> str:
    """The cost header's and trailer's value: plain decimal USD, or `unknown`."""
    return "unknown" if cost is None else f"{cost:.10f}".rstrip("0").rstrip(".") or "0"
