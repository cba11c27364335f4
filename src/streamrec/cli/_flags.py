"""Command-line flags derived from a tree of config dataclasses: `--section.field=value`.

The dataclasses are the single source of truth: each init field becomes a flag named by its
dotted path (a nested dataclass field becomes a group), its annotation decides how the text is
converted, its default is shown in `--help`, and its attribute docstring (the string literal
right below the field in the class body) is its help text. Values are checked by the
dataclasses' own `__post_init__`, so a flag error and a library error say the same thing.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import enum
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from streamrec import ConfigError

T = TypeVar("T")
_MISSING = dataclasses.MISSING
_NULLS = ("null", "none", "~")
_TRUE = ("true", "1")
_FALSE = ("false", "0")


class FlagError(ConfigError):
    """A command-line flag is unknown, missing, or its value does not convert or validate.

    The message starts with the flag (`--dataset.fps=abc: expected an integer`).
    """


@dataclasses.dataclass(frozen=True, slots=True)
class Flag:
    """One settable leaf of the config tree."""

    name: str
    """Dotted path without dashes, e.g. `dataset.camera_encoder.vcodec`."""
    annotation: Any
    """The field's resolved type annotation; it decides how the text converts."""
    default: Any
    """Default value, or `dataclasses.MISSING` for a required flag."""
    help: str
    """The field's attribute docstring (empty when it has none)."""

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)


# -- introspection --------------------------------------------------------------------------------


def attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> docstring, read from the class bodies of `cls` and its bases.

    An attribute docstring is a string expression statement right after an annotated
    assignment. Classes without source (frozen apps, C types) simply give no help text.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, after in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[stmt.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


def flag_name(f: dataclasses.Field) -> str:
    """A field's flag name: its own, unless `metadata={"flag": ...}` gives the name users know it by."""
    return f.metadata.get("flag", f.name)


def flags_of(cls: type, prefix: str = "", default: Any = _MISSING) -> list[Flag]:
    """Every flag of the config tree rooted at dataclass `cls`, in field order.

    Args:
        cls: The dataclass.
        prefix: Dotted path of `cls` inside the tree ("" at the root).
        default: An instance of `cls` whose values are the defaults (a section built by a
            `default_factory`); MISSING uses the fields' own defaults.
    """
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    out: list[Flag] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        annotation = hints[f.name]
        value = getattr(default, f.name) if default is not _MISSING else _field_default(f)
        name = f"{prefix}{flag_name(f)}"
        if _is_section(annotation):
            out.extend(flags_of(annotation, f"{name}.", value))
        else:
            out.append(Flag(name, annotation, value, docs.get(f.name, "")))
    return out


# -- conversion -----------------------------------------------------------------------------------


def _union_members(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return None


def _type_name(annotation: Any) -> str:
    members = _union_members(annotation)
    if members is not None:
        return "|".join(_type_name(m) for m in members)
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "{" + ",".join(str(m.value) for m in annotation) + "}"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if annotation in (str, Path):
        return "str"
    if _is_mapping(annotation):
        return "yaml-map"
    return getattr(annotation, "__name__", str(annotation))


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _expected(annotation: Any) -> str:
    """What a value of this type looks like, for error messages."""
    members = _union_members(annotation)
    if members is not None:
        return " or ".join(_expected(m) for m in _by_strictness(members))
    if annotation is type(None):
        return "null"
    if annotation is bool:
        return "true or false (or 1/0)"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return f"one of {[m.value for m in annotation]}"
    if _is_mapping(annotation):
        return "a YAML mapping such as '{key: value}'"
    return "a string"


def _by_strictness(members: Sequence[Any]) -> list[Any]:
    """Union members in the order to try them: the pickiest first, str last."""
    order = {type(None): 0, bool: 1, int: 2, float: 3, str: 9, Path: 9}
    return sorted(members, key=lambda m: order.get(m, 5))


def convert(text: str, annotation: Any) -> Any:
    """Convert a flag's text to a value of `annotation`.

    Raises:
        ValueError: it does not convert; the message says what was expected.
    """
    members = _union_members(annotation)
    if members is not None:
        for member in _by_strictness(members):
            try:
                return convert(text, member)
            except ValueError:
                continue
        raise ValueError(f"expected {_expected(annotation)}")
    if annotation is type(None):
        if text.strip().lower() in _NULLS:
            return None
        raise ValueError("expected null")
    if annotation is bool:
        low = text.strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(f"expected {_expected(bool)}")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(text)
        except ValueError:
            raise ValueError(f"expected {_expected(annotation)}") from None
    if _is_mapping(annotation):
        return _convert_mapping(text, annotation)
    if annotation is Path:
        return Path(text)
    return text


def _convert_mapping(text: str, annotation: Any) -> dict:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"expected {_expected(annotation)}; YAML error: {problem}") from None
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected {_expected(annotation)}, got {type(value).__name__} {value!r}")
    args = typing.get_args(annotation)
    if len(args) == 2 and args[1] is str:
        # YAML reads `{threads: 4}` as an int; a str-valued mapping wants the text back.
        value = {k: v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
                 for k, v in value.items()}
    return dict(value)


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Mapping):
        return yaml.safe_dump(dict(value), default_flow_style=True, width=10**6).strip()
    return str(value)


# -- parsing --------------------------------------------------------------------------------------


def _split(argv: Sequence[str], known: Mapping[str, Flag], groups: set[str],
           hints: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Flag name -> (text as given, value text), for `--a.b=v` and `--a.b v` forms."""
    given: dict[str, tuple[str, str]] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--") or token == "--":
            raise FlagError(f"{token}: unexpected argument; flags look like --dataset.fps=30")
        name, eq, value = token[2:].partition("=")
        name = name.replace("-", "_")
        flag = known.get(name)
        if flag is None:
            raise FlagError(_unknown(token.partition("=")[0], name, known, groups, hints))
        if not eq:
            if i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
            elif flag.annotation is bool:
                value = "true"  # `--display_data` alone switches it on
            else:
                raise FlagError(f"--{name}: needs a value ({flag.type_name}), e.g. --{name}=VALUE")
        if name in given:
            raise FlagError(f"--{name}: given twice ({given[name][0]} and --{name}={value})")
        given[name] = (f"--{name}={value}", value)
    return given


def _unknown(shown: str, name: str, known: Mapping[str, Flag], groups: set[str], hints: Mapping[str, str]) -> str:
    for prefix, hint in hints.items():
        if name == prefix or name.startswith(prefix + "."):
            return f"{shown}: unknown flag; {hint}"
    if name in groups:
        fields_ = [n for n in known if n.startswith(name + ".")]
        return f"{shown}: is a group of flags, not a flag; set its fields, e.g. --{fields_[0]}=..."
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean --{close[0]}?" if close else "; see --help for the list"
    return f"{shown}: unknown flag{hint}"


def parse(cls: type[T], argv: Sequence[str], hints: Mapping[str, str] | None = None) -> T:
    """Build dataclass `cls` from command-line flags.

    Args:
        cls: Root dataclass of the config tree.
        argv: The flags, e.g. `["--dataset.fps=30", "--dataset.root", "out"]`.
        hints: What to say about unknown flags that users bring from elsewhere, by name or group
            (`{"robot": "..."}` answers `--robot.type` too), instead of guessing a close name.

    Returns:
        The built and validated config.

    Raises:
        FlagError: an unknown or repeated flag, a missing required flag, a value that does not
            convert, or one a dataclass rejects; the message names the flag.
    """
    flags = flags_of(cls)
    known = {f.name: f for f in flags}
    groups = {name.rsplit(".", i)[0] for name in known for i in range(1, name.count(".") + 1)}
    given = _split(argv, known, groups, hints or {})
    values: dict[str, Any] = {}
    for name, (shown, text) in given.items():
        try:
            values[name] = convert(text, known[name].annotation)
        except ValueError as e:
            raise FlagError(f"{shown}: {e}") from None
    missing = [f for f in flags if f.required and f.name not in given]
    if missing:
        raise FlagError("missing required flag(s): " + ", ".join(f"--{f.name}=<{f.type_name}>" for f in missing))
    return _build(cls, "", _MISSING, values, given)


def _build(cls: type[T], prefix: str, base: Any, values: dict[str, Any], given: dict[str, tuple[str, str]]) -> T:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = f"{prefix}{flag_name(f)}"
        if _is_section(hints[f.name]):
            section_base = getattr(base, f.name) if base is not _MISSING else _field_default(f)
            if section_base is _MISSING or any(n.startswith(name + ".") for n in given):
                kwargs[f.name] = _build(hints[f.name], f"{name}.", section_base, values, given)
            else:
                kwargs[f.name] = section_base
        elif name in values:
            kwargs[f.name] = values[name]
    try:
        if base is not _MISSING:
            return dataclasses.replace(base, **kwargs)
        return cls(**kwargs)
    except ConfigError as e:
        raise FlagError(f"{_blame(str(e), prefix, cls, given)}: {e}") from None


def _blame(message: str, prefix: str, cls: type, given: dict[str, tuple[str, str]]) -> str:
    """The flag a dataclass's ConfigError is about: the set field its message names, else the
    only flag set in that section, else the section."""
    mine = [n for n in given if n.startswith(prefix) and "." not in n[len(prefix):]]
    field_of = {flag_name(f): f.name for f in dataclasses.fields(cls)}
    named = [n for n in mine if re.search(rf"(^|[.\s]){re.escape(field_of.get(n[len(prefix):], ''))}\s*=", message)]
    if len(named) == 1:
        return given[named[0]][0]
    if len(mine) == 1:
        return given[mine[0]][0]
    return f"--{prefix.rstrip('.')}" if prefix else cls.__name__


# -- help -----------------------------------------------------------------------------------------


def format_help(cls: type, *, usage: str, description: str, width: int = 100) -> str:
    """`--help` text: usage, description, then every flag with type, default and help."""
    lines = [f"usage: {usage}", "", *textwrap.wrap(description, width), "",
             "flags (--name=value or --name value; '-' and '_' are interchangeable in names):"]
    for flag in sorted(flags_of(cls), key=lambda f: not f.required):  # what must be given first
        default = "required" if flag.required else f"default: {format_value(flag.default)}"
        lines.append(f"  --{flag.name}  ({flag.type_name}; {default})")
        if flag.help:
            lines.extend(textwrap.wrap(flag.help, width, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines) + "\n"
