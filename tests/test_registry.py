"""Families are registered in one place: every member module appears in its registry."""

from __future__ import annotations

import importlib
import pkgutil

import probes
from monitor.config import CHANNEL_TYPES, ChannelBase
from probes import REGISTRY
from probes.base import TargetConfig


def test_every_probe_kind_is_registered_under_its_type_tag() -> None:
    for module in pkgutil.iter_modules(probes.__path__):
        importlib.import_module(f"probes.{module.name}")
    concrete = {cls for cls in _subclasses(TargetConfig)}
    assert concrete == {kind.config_model for kind in REGISTRY.values()}
    for tag, kind in REGISTRY.items():
        assert kind.config_model.model_fields["type"].default == tag


def test_every_channel_type_is_registered_under_its_type_tag() -> None:
    assert set(_subclasses(ChannelBase)) == set(CHANNEL_TYPES.values())
    for tag, model in CHANNEL_TYPES.items():
        assert tag in str(model.model_fields["type"].annotation)


def _subclasses(base: type) -> list[type]:
    found: list[type] = []
    for cls in base.__subclasses__():
        found.append(cls)
        found.extend(_subclasses(cls))
    return found
