"""Model registry: adding an architecture is one file in this package plus a config entry.

Each module here defines a builder decorated with ``@register("name")``. Importing this
package imports every sibling module, so the Snakefile and the config never list files.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from torch import nn

from mnistbench.errors import ConfigError

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}
_SOURCES: dict[str, str] = {}  # name -> module, for the error on a duplicate


DECLARED_MACS: dict[str, int] = {}


def register(name: str, macs: int | None = None) -> Callable[[Builder], Builder]:
    """Decorator that makes ``build_model(name)`` return the decorated builder's network.

    ``macs``: multiply-accumulates per image with the default kwargs, as written in the file
    (tests check it against ``count_macs``). The workflow reads it from the file's text, without
    importing torch, to start the costliest train jobs first (workflow/rules/common.smk)."""

    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice ({_SOURCES[name]}, {fn.__module__})")
        _REGISTRY[name] = fn
        _SOURCES[name] = fn.__module__
        if macs is not None:
            DECLARED_MACS[name] = macs
        return fn

    return deco


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def _check(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown model architecture {name!r}; available: {', '.join(available_models())}. "
            "Fix `arch` (or the model's name) under `models:` in the config, or add a file "
            "to src/mnistbench/models/ that registers it."
        )


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered architecture; ``kwargs`` come from the config's ``model_kwargs``."""
    _check(name)
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"bad model_kwargs for {name!r}: {exc}. Fix models.<name>.model_kwargs."
        ) from exc


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


_discover()
