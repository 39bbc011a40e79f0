"""Reading `config.yaml`: YAML with line numbers, `${VAR}` interpolation, every error reported.

Why not stop at the first error: a user fixing a config wants the whole list, each with
file, line and key path, the way a compiler reports.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from monitor.config import CHANNEL_TYPES, Settings, cross_reference_problems
from monitor.config_meaning import meaning_problems
from monitor.errors import ConfigError, ConfigProblem
from probes import REGISTRY

Path_ = tuple[str | int, ...]
_VARIABLE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class LoadedConfig:
    """A valid config plus what `check` should tell the user about it."""

    settings: Settings
    file: str
    warnings: list[ConfigProblem] = field(default_factory=list)
    disabled_channels: dict[str, list[str]] = field(default_factory=dict)
    disabled_targets: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        s = self.settings
        enabled = len(s.alerting.channels) - len(self.disabled_channels)
        off = f" (+{len(self.disabled_targets)} disabled)" if self.disabled_targets else ""
        return (f"{self.file}: OK — {len(s.targets)} targets{off}, {len(s.slos)} SLOs, "
                f"{enabled} of {len(s.alerting.channels)} channels enabled, "
                f"{len(s.alerting.policies)} escalation policies")


def load_config(path: str | Path, env: Mapping[str, str]) -> LoadedConfig:
    """Load and validate a config file; raise ConfigError listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read config: {exc.strerror}")]) \
            from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(
            file, None, "", f"cannot read config: not UTF-8 text (byte {exc.start})")]) from None
    return parse_config(text, file, env)


def parse_config(text: str, file: str, env: Mapping[str, str]) -> LoadedConfig:
    """Validate config text; `file` is only used in messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, text, file)]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(file, 1, "", "the config must be a mapping of sections")])
    lines: dict[Path_, int] = {}
    duplicates: list[tuple[Path_, int]] = []
    if node is not None:
        _record_lines(node, (), lines, duplicates)
    problems = [ConfigProblem(file, line, format_path(path),
                              f"duplicate key {path[-1]!r}: it is already set above")
                for path, line in duplicates]
    interpolated: set[Path_] = set()
    data = _interpolate(raw, (), env, lines, file, problems, interpolated)
    for path, message in cross_reference_problems(data):
        problems.append(ConfigProblem(file, _line_for(path, lines), format_path(path), message))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        unset = {p.path for p in problems}  # a missing ${VAR} already explains its value
        problems.extend(p for p in _from_validation_error(exc, data, lines, file)
                        if p.path not in unset)
    meaning = meaning_problems(settings) if not problems else []
    if meaning:
        problems.extend(ConfigProblem(file, _line_for(m.path, lines), format_path(m.path),
                                      m.message) for m in meaning if m.error)
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ConfigError(problems)
    loaded = LoadedConfig(_without_disabled_targets(settings), file)
    loaded.warnings.extend(ConfigProblem(file, _line_for(m.path, lines), format_path(m.path),
                                         m.message) for m in meaning if not m.error)
    for target in settings.targets:
        if not target.enabled:
            loaded.disabled_targets[target.name] = [
                slo.name for slo in settings.slos if slo.target == target.name]
    for path in _secret_paths(settings, ()):
        if path not in interpolated:
            loaded.warnings.append(ConfigProblem(
                file, _line_for(path, lines), format_path(path),
                "a literal secret in the config file; prefer ${ENV_VAR}"))
    for channel in settings.alerting.channels:
        missing = channel.missing_credentials()
        if missing:
            loaded.disabled_channels[channel.name] = missing
    return loaded


def _yaml_problem(exc: yaml.YAMLError, text: str, file: str) -> ConfigProblem:
    """`file:line:column: invalid YAML: …`, then the offending line, a caret under the
    column and, for the usual causes, what to change."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return ConfigProblem(file, None, "", f"invalid YAML: {problem}")
    source = text.splitlines()
    shown = source[mark.line] if mark.line < len(source) else ""
    message = (f"invalid YAML: {problem}\n    {shown.expandtabs(1)}\n"
               f"    {' ' * mark.column}^")
    hint = _yaml_hint(problem, exc)
    if hint:
        message += f"\n  hint: {hint}"
    return ConfigProblem(file, mark.line + 1, "", message, column=mark.column + 1)


def _yaml_hint(problem: str, exc: yaml.YAMLError) -> str:
    context = str(getattr(exc, "context", "") or "")
    if "\\t" in problem or "tab" in problem:
        return "YAML indents with spaces only: replace the tab with spaces"
    if "mapping values are not allowed" in problem:
        return ("a `key: value` where a value was expected: check this line's "
                "indentation, or quote a value that contains ': '")
    if "expected <block end>" in problem or "expected <block end>" in context \
            or "did not find expected key" in problem:
        return ("check the indentation: keys of one mapping start in the same column, "
                "and list items start with '- ' under their key")
    if "could not find expected ':'" in problem:
        return "a key needs ': ' after it (a space after the colon)"
    if "found undefined alias" in problem or "found character" in problem:
        return "quote values that start with '*', '&', '@', '`', '%' or '!'"
    return ""


def _without_disabled_targets(settings: Settings) -> Settings:
    """Targets with `enabled: false` (and their SLOs) are validated, then left out, so a
    shipped config can describe optional parts switched on by environment variables."""
    enabled = [t for t in settings.targets if t.enabled]
    names = {t.name for t in enabled}
    slos = [slo for slo in settings.slos if slo.target in names]
    return settings.model_copy(update={"targets": enabled, "slos": slos})


def format_path(path: Path_) -> str:
    """`("targets", 0, "expect", "status")` → `targets[0].expect.status`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int],
                  duplicates: list[tuple[Path_, int]]) -> None:
    """Map every key path to its line; note keys set twice (YAML silently keeps the last)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                duplicates.append(((*path, key), key_node.start_mark.line + 1))
            seen.add(key)
            _record_lines(value_node, (*path, key), lines, duplicates)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines, duplicates)


def _line_for(path: Path_, lines: Mapping[Path_, int]) -> int | None:
    """The line of the deepest part of `path` present in the file."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _interpolate(value: Any, path: Path_, env: Mapping[str, str], lines: Mapping[Path_, int],
                 file: str, problems: list[ConfigProblem], interpolated: set[Path_]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), env, lines, file, problems, interpolated)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), env, lines, file, problems, interpolated)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        interpolated.add(path)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(ConfigProblem(
            file, _line_for(path, lines), format_path(path),
            f"environment variable {name} is not set (write ${{{name}:-}} to make it optional)"))
        return ""

    return _VARIABLE.sub(substitute, value)


def _from_validation_error(exc: ValidationError, data: Any, lines: Mapping[Path_, int],
                           file: str) -> Iterator[ConfigProblem]:
    for error in exc.errors(include_url=False):
        path = _data_path(error["loc"], data)
        if error["type"] == "union_tag_invalid":
            path = (*path, "type")
        message = _friendly_message(error, path, data)
        yield ConfigProblem(file, _line_for(path, lines), format_path(path), message)


def _data_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Drop pydantic's union tags and validator names, keeping keys present in the data."""
    path: list[str | int] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and isinstance(current, dict) and part not in current \
                and part == loc[-1]:
            path.append(part)  # a missing required key: name it
            current = None
    return tuple(path)


def _friendly_message(error: Any, path: Path_, data: Any) -> str:
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        parent = _parent_fields(error["loc"])
        hint = difflib.get_close_matches(str(key), parent, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"unknown key {key!r}{suggestion}"
    if kind == "missing":
        return f"required key {path[-1]!r} is missing" if path else "required key is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = error.get("ctx", {}).get("expected_tags", "")
        if kind == "union_tag_not_found":
            # pydantic gives no tags here; the union is targets' or channels'
            kinds = CHANNEL_TYPES if "channels" in error["loc"] else REGISTRY
            return f"required key 'type' is missing (one of {', '.join(map(repr, kinds))})"
        return f"`type` must be one of {expected}" if expected else message
    return message


def _parent_fields(loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed where an unknown key was found, for 'did you mean'."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        if part in model.model_fields:
            model = _model_of(model.model_fields[part].annotation)
        else:
            model = _model_by_tag(part)
    return list(model.model_fields) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _model_by_tag(tag: str) -> type[BaseModel] | None:
    if tag in REGISTRY:
        return REGISTRY[tag].config_model
    return CHANNEL_TYPES.get(tag)


def _secret_paths(model: BaseModel, path: Path_) -> Iterator[Path_]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = type(model).model_fields[name].alias or name
        if isinstance(value, SecretStr) and value.get_secret_value():
            yield (*path, key)
        elif isinstance(value, BaseModel):
            yield from _secret_paths(value, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _secret_paths(item, (*path, key, index))
