"""Training config files: YAML (1.2 floats), ``base:`` chains, shipped configs by name and
``--set key=value`` overrides, as raw dicts. The sections they hold and their checks are
:mod:`.train_config`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..configs import configs_dir, shipped_names

#: Folders of a relative ``--config`` path that name a shipped config (``tiny.yaml``; the
#: repository's former ``config/tiny.yaml``).
_SHIPPED_PREFIXES = ("", "config", "configs", "vita_grasp_core/configs")


class ConfigError(ValueError):
    """A configuration key or value is invalid (message names the dotted key)."""


#: Largest config file read (bytes): a config is a few kB.
MAX_CONFIG_BYTES = 1 << 20


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does; PyYAML's YAML
    1.1 rules would make it the string "1e-4". Aliases (``*name``) are refused: nested aliases
    expand exponentially (a 526-byte "billion laughs" file took 21.7 s and 563 MB), and no
    config needs them (use ``base:`` to share settings)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(f"YAML aliases (*{self.peek_event().anchor}) are not supported in "
                              f"configs (line {mark.line + 1}); write the values out or use "
                              "base:")
        return super().compose_node(parent, index)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str):
    """``yaml.safe_load`` with YAML 1.2 floats (``1e-4``)."""
    return yaml.load(text, Loader=_Loader)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> ``(["train", "epochs"], 3)`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value (dotted key), got {text!r}")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if parts and parts[0] == "training":  # alias of the train section
        parts[0] = "train"
    if len(parts) < 2:
        raise ConfigError(f"--set key must be section.key (e.g. train.epochs), got {key!r}")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r} as YAML ({e})") from None
    return parts, value


def apply_override(raw: dict, parts: list[str], value) -> None:
    d = raw
    for p in parts[:-1]:
        nxt = d.get(p)
        if nxt is None:
            nxt = d[p] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"--set {'.'.join(parts)}: {p} is not a section")
        d = nxt
    d[parts[-1]] = value


def resolve_config_path(path) -> Path:
    """``path`` as given, else a shipped config of that file name (``tiny.yaml`` or
    ``config/tiny.yaml`` from any directory)."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute() and str(p.parent).strip(".") in _SHIPPED_PREFIXES:
        alt = configs_dir() / p.name
        if alt.is_file():
            return alt
    raise ConfigError(f"config file not found: {path} (shipped configs: {shipped_names()})")


def _merge_into(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``, key by key: mappings merge, anything else replaces."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge_into(base[k], v)
        else:
            base[k] = v
    return base


def load_raw(path, _chain=()) -> dict:
    """A config file as a raw dict. ``base: other.yaml`` (relative to the file, else a shipped
    config of that name) starts from that file; what this file gives overrides the base's values
    key by key (sections and nested mappings merge, any other value replaces)."""
    p = resolve_config_path(path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: {p.stat().st_size} bytes is not a config file (more than "
                              f"{MAX_CONFIG_BYTES} bytes)")
        raw = yaml_load(p.read_text()) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a text file ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: top level must be a mapping with sections model, data, train")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{p}: base must be the path of another config file, got {base!r}")
    chain = _chain + (p.resolve(),)
    local = p.parent / base
    base_path = resolve_config_path(local if local.is_file() else base)
    if base_path.resolve() in chain:
        raise ConfigError(f"{p}: base {base} includes itself "
                          f"({' -> '.join(c.name for c in chain + (base_path,))})")
    return _merge_into(load_raw(base_path, chain), raw)
