"""The kernel of the suite: name -> class registries (methods, datasets), the error types and the checks of
user-given names and values.

`methods/` and `datamodules/` import this module and nothing else from `benchmark`, and it imports
nothing from the project (a test holds this), so the runner can depend on them and not the reverse.
"""

from __future__ import annotations

import inspect
import warnings
from importlib import metadata
from typing import Any, Callable, Generic, TypeVar, get_type_hints

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


class ConfigError(ValueError):
    """A user-facing configuration mistake; its message is one line saying what was wrong and what to do."""


class UnknownNameError(ConfigError):
    """A method, dataset, table or preset name that is not registered."""


class PluginWarning(UserWarning):
    """A plugin that could not be loaded; everything else works without it."""


class Registry(Generic[T]):
    """A name -> class map. Built-ins and plugins register the same way: @REGISTRY.register("name")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loading = "built-in"  # the origin of entries registered now (a plugin's, while it loads)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding a class under `name`; a name already taken is an error."""
        def add(entry: T) -> T:
            if name in self._entries:
                raise ConfigError(f"{self.kind} name {name!r} is already registered (by {self._origins[name]})")
            self._entries[name] = entry
            self._origins[name] = self._loading
            entry.registered_name = name  # type: ignore[attr-defined]
            return entry
        return add

    def get(self, name: str) -> T:
        """The class registered under `name`; an unknown name raises an error listing the valid ones."""
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}")
        return self._entries[name]

    def origin(self, name: str) -> str:
        """Where the entry came from ('built-in' or a plugin's name)."""
        self.get(name)
        return self._origins[name]

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def load_plugins(self, group: str) -> None:
        """Load every entry point of the packaging group `group`: each names a module whose import
        registers its entries with @register, under the origin of its distribution's name.

        A plugin that fails to import, registers a name already taken or registers nothing is left
        out whole (its other entries are withdrawn), with one PluginWarning naming it and the reason.
        """
        for entry_point in metadata.entry_points(group=group):
            origin = entry_point.dist.name if entry_point.dist else entry_point.value
            before = set(self._entries)
            self._loading = origin
            try:
                entry_point.load()
                if set(self._entries) == before:
                    raise ConfigError(f"importing {entry_point.value!r} registered no {self.kind}; the entry "
                                      f"point must name a module that registers with @register")
            except (Exception, SystemExit) as error:  # a broken plugin (even one calling sys.exit) must not cost the rest
                for name in set(self._entries) - before:
                    del self._entries[name], self._origins[name]
                warnings.warn(f"{self.kind} plugin {entry_point.name!r} from {origin} was not loaded: "
                              f"{type(error).__name__}: {error}", PluginWarning, stacklevel=2)
            finally:
                self._loading = "built-in"


def keyword_parameters(cls: type, exclude: frozenset[str] = frozenset()) -> dict[str, inspect.Parameter]:
    """Keyword parameters of cls.__init__, following **kwargs up the class hierarchy, minus `exclude`."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        hints = get_type_hints(init, include_extras=True)
        signature = inspect.signature(init)
        for name, param in list(signature.parameters.items())[1:]:
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and name not in params:
                params[name] = param.replace(annotation=hints.get(name, param.annotation))
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return {name: p for name, p in params.items() if name not in exclude}


def resolve_kwargs(cls: type, given: dict[str, Any], what: str,
                   exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """All hyperparameters of `cls` with defaults filled in; unknown or mistyped keys raise ConfigError."""
    params = keyword_parameters(cls, exclude)
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(params))}")
    resolved: dict[str, Any] = {}
    for name, param in params.items():
        if name in given:
            resolved[name] = checked(param.annotation, given[name], f"{what}: {name}")
        elif param.default is inspect.Parameter.empty:
            raise ConfigError(f"{what}: missing required key {name!r}")
        else:
            resolved[name] = param.default
    return resolved


def checked(annotation: Any, value: Any, where: str) -> Any:
    """The value if it has the annotated type and meets its constraints (pydantic's strict mode: no
    string to number conversion; an int passes as a float); else a ConfigError in one line naming
    `where`, the value and what was expected."""
    try:
        return TypeAdapter(annotation).validate_python(value, strict=True)
    except ValidationError as error:
        messages = [problem["msg"].removeprefix("Value error, ") for problem in error.errors()]
        problems = "; or ".join(dict.fromkeys(message[:1].lower() + message[1:] for message in messages))
        raise ConfigError(f"{where}: {value!r} is not valid: {problems}") from None
