"""Dagster run config generated from the core's config dataclasses, so each value is declared once.

`dagster_config(SearchConfig)` is a `dagster.Config` with the same fields, defaults and help
texts (shown in the launchpad), nested dataclasses becoming nested configs; `to_core(cfg,
SearchConfig)` turns it back into the validated dataclass. Tuples become lists in run config.
`defaults` gives a field different defaults (per round, say) without declaring it twice.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache

import pydantic
from dagster import Config


def dagster_config(dc: type, **defaults) -> type[Config]:
    return _config(dc, tuple(sorted(defaults.items())))


@lru_cache(maxsize=None)
def _config(dc: type, defaults: tuple) -> type[Config]:
    hints, overrides = typing.get_type_hints(dc), dict(defaults)
    fields = {}
    for f in dataclasses.fields(dc):
        typ = hints[f.name]
        default = overrides.get(f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
        if dataclasses.is_dataclass(typ):
            typ = dagster_config(typ)
            default = typ(**_plain(dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default))
        elif typing.get_origin(typ) is tuple:
            typ, default = list[typing.get_args(typ)[0]], list(default)
        fields[f.name] = (typ, pydantic.Field(default=default, description=f.metadata.get("help")))
    name = dc.__name__ + ("_" + "_".join(k for k, _ in defaults) if defaults else "")
    return pydantic.create_model(name, __base__=Config, __doc__=dc.__doc__, **fields)


def _plain(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def to_core(cfg: Config, dc: type):
    hints = typing.get_type_hints(dc)
    values = {}
    for f in dataclasses.fields(dc):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            value = to_core(value, hints[f.name])
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return dc(**values)
