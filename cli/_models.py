"""What a model name given on the command line (`-m`, `/model`, `route test MODEL`) will do,
said before anything is sent: an explicit target naming an unknown provider or model is an
error, and a name that is neither an alias nor a target but looks like a misspelt alias gets a
"did you mean" (it would silently take the default route).

The names come from the config when there is one, else from the daemon's `/v1/models`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from proxy.config.targets import GLOB_CHARS
from proxy.errors import RoutingError
from proxy.frozen import frozen

if TYPE_CHECKING:
    from proxy.config import Config


@frozen
class ModelCheck:
    error: str | None = None
    warning: str | None = None


def check_model(name: str, config: Config | None, listed: Sequence[str] = ()) -> ModelCheck:
    """`listed`: the daemon's model ids, used when there is no config."""
    if name == "auto":
        return ModelCheck()
    if config is not None:
        return _against_config(name, config)
    if not listed:
        return ModelCheck()
    providers = sorted({i.partition(",")[0] for i in listed if "," in i})
    aliases = [i for i in listed if "," not in i]
    if "," in name:
        provider = name.partition(",")[0].strip()
        if provider not in providers:
            return ModelCheck(
                error=f"model '{name}' names provider '{provider}', which is not "
                f"configured (known: {', '.join(providers)})"
            )
        return ModelCheck()
    return _typo(name, aliases)


def _against_config(name: str, config: Config) -> ModelCheck:
    from proxy.routing import explicit_target  # the routing code only when a name is given

    try:
        if explicit_target(name, config) is not None:
            return ModelCheck()
    except RoutingError as exc:
        return ModelCheck(error=str(exc))
    mappings = config.router.model_mappings
    if any(m.matches(name) for m in mappings):
        return ModelCheck()
    return _typo(name, [m.pattern for m in mappings if not GLOB_CHARS.intersection(m.pattern)])


def _typo(name: str, aliases: Sequence[str]) -> ModelCheck:
    if name in aliases:
        return ModelCheck()
    close = difflib.get_close_matches(name, aliases, n=1, cutoff=0.75)
    if not close:
        return ModelCheck()
    return ModelCheck(
        warning=f"model '{name}' is not an alias or a target, so it takes the "
        f"route its request calls for; did you mean '{close[0]}'?"
    )
