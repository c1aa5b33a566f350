"""What a request cost, from its usage and the served model's prices (USD per million tokens).

Cache reads and writes are priced at their own rates when the capability table or the config
knows them; an unknown cache rate is charged as ordinary input, so a cost is never understated
for want of a discount. Unknown input or output prices make the cost unknown (None), not zero.
"""

from __future__ import annotations

from bisect import bisect_right

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


DECADES = tuple(10.0**-k for k in range(12, 2, -1))
"""1e-12 ... 1e-3: below a cent, how many of them a cost reaches gives its first digit's place
(`bisect` over them is a fifth of `floor(log10(cost))`'s cost, and this runs for every request
line)."""
_SPECS = tuple(f".{decimals}f" for decimals in range(13))


def format_cost(cost: float | None) -> str:
    """`$0.0123`, `$0.0000271` (three significant digits below a cent), `-` when unknown."""
    if cost is None:
        return "-"
    if cost == 0 or cost >= 0.01:
        return f"${cost:.4f}"
    # Reaching 10^k (k from -12) puts the first digit k places after the point: 2 - k decimals.
    return f"${cost:{_SPECS[min(12, 15 - bisect_right(DECADES, cost))]}}"


def cost_value(cost: float | None) -> str:
    """The cost header's and trailer's value: plain decimal USD, or `unknown`."""
    return "unknown" if cost is None else f"{cost:.10f}".rstrip("0").rstrip(".") or "0"
