"""Dagster run config generated from the core's config dataclasses, so each value is declared once.

`dagster_config(SearchConfig)` is a `dagster.Config` with the same fields, defaults and help
texts (shown in the launchpad); `to_core(cfg, SearchConfig)` turns it back into the validated
dataclass. Tuples become lists in run config.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache

import pydantic
from dagster import Config


@lru_cache(maxsize=None)
def dagster_config(dc: type) -> type[Config]:
    hints = typing.get_type_hints(dc)
    fields = {}
    for f in dataclasses.fields(dc):
        typ, default = hints[f.name], f.default
        if typing.get_origin(typ) is tuple:
            typ, default = list[typing.get_args(typ)[0]], list(default)
        fields[f.name] = (typ, pydantic.Field(default=default, description=f.metadata.get("help")))
    return pydantic.create_model(dc.__name__, __base__=Config, __doc__=dc.__doc__, **fields)


def to_core(cfg: Config, dc: type):
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model_dump().items()}
    return dc(**values)
