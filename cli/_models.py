"""What a model name given on the command line (`-m`, `/model`, `route test MODEL`) will do,
said before anything is sent: an explicit target naming an unknown provider or model is an
error, and a name that is neither an alias nor a target but looks like a misspelt alias gets a
"did you mean" (it would silently take the default route)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from proxy.config import GLOB_CHARS, Config
from proxy.errors import RoutingError


@dataclass(frozen=True, slots=True)
class ModelCheck:
    error: str | None = None
    warning: str | None = None


def check_model(name: str, config: Config | None) -> ModelCheck:
    if config is None or name == "auto":
        return ModelCheck()
    from proxy.routing import explicit_target  # the routing code only when a name is given

    try:
        if explicit_target(name, config) is not None:
            return ModelCheck()
    except RoutingError as exc:
        return ModelCheck(error=str(exc))
    router = config.router
    if any(m.matches(name) for m in router.model_mappings):
        return ModelCheck()
    aliases = [m.pattern for m in router.model_mappings if not GLOB_CHARS.intersection(m.pattern)]
    close = difflib.get_close_matches(name, aliases, n=1, cutoff=0.75)
    if close:
        return ModelCheck(warning=f"model '{name}' is not an alias or a target, so it takes the "
                                  f"route its request calls for; did you mean '{close[0]}'?")
    return ModelCheck()
