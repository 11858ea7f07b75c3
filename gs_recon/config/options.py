"""Typed command-line options generated from the config dataclasses (tyro).

Why tyro: gsplat's simple_trainer and nerfstudio build their command lines with it, it is maintained, and
it reads each field's type, default and comment straight from the dataclasses in gs_recon/config/schema.py,
so ``--help`` cannot drift from the code. What we add on top (``REGISTRY``) is how values are typed:

- booleans take a value: ``--mesh.extract false`` (true/false/yes/no/on/off/1/0); a tool's own switches
  (``--resume``, ``--no_progress``) stay flags; ``--no-progress`` and ``--no_progress`` are the same option;
- Optional fields take ``none`` / ``null`` as None; plain ``str`` fields keep "none" as the string;
- lists take ``5,30``, ``5 30`` or ``[5, 30]``;
- ints take ``30000`` or ``3e4``; ``Literal`` fields (``--guidance {none,sd}``) list their choices.

Layers: defaults, then the YAML preset (``--config``) or the run's saved config, then the command line.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import re
import typing
from pathlib import Path
from typing import Any, List, Optional, Sequence

import tyro
import yaml
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

from ..errors import SceneError
from .schema import RETIRED, Config, _apply, preset_path, validate

REGISTRY = ConstructorRegistry()
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _bool(args: List[str]) -> bool:
    v = args[0].lower()
    if v in TRUE or v in FALSE:
        return v in TRUE
    raise ValueError(f"expects true/false/1/0, got {args[0]!r}")


def _int(args: List[str]) -> int:
    v = args[0]
    try:
        f = float(v)  # '3e4' -> 30000.0
    except ValueError:
        f = 0.5
    if not f.is_integer():
        raise ValueError(f"expects an integer, got {v!r}")
    return int(v) if re.fullmatch(r"[+-]?\d+", v) else int(f)


def _list_of(conv):
    def parse(args: List[str]):
        s = " ".join(args).strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1]
        return [conv(x) for x in s.replace(",", " ").split()]

    return parse


@REGISTRY.primitive_rule
def _rules(info: PrimitiveTypeInfo) -> Optional[PrimitiveConstructorSpec]:
    t = info.type
    if t is bool:
        return PrimitiveConstructorSpec(nargs=1, metavar="{true,false}", instance_from_str=_bool,
                                        is_instance=lambda x: isinstance(x, bool),
                                        str_from_instance=lambda b: ["true" if b else "false"])
    if t is int:
        return PrimitiveConstructorSpec(nargs=1, metavar="INT", instance_from_str=_int,
                                        is_instance=lambda x: isinstance(x, int) and not isinstance(x, bool),
                                        str_from_instance=lambda x: [str(x)])
    if t == Optional[str]:
        return PrimitiveConstructorSpec(
            nargs=1, metavar="STR|none", instance_from_str=lambda a: None if a[0].lower() in ("none", "null") else a[0],
            is_instance=lambda x: x is None or isinstance(x, str), str_from_instance=lambda s: ["none" if s is None else s])
    if typing.get_origin(t) is list and typing.get_args(t)[0] in (int, float, str):
        et = typing.get_args(t)[0]
        conv = {int: lambda x: _int([x]), float: float, str: str}[et]
        return PrimitiveConstructorSpec(nargs="*", metavar=f"{et.__name__.upper()},...", instance_from_str=_list_of(conv),
                                        is_instance=lambda x: isinstance(x, list),
                                        str_from_instance=lambda xs: [",".join(map(str, xs))])
    return None


# A tool's arguments = its own fields + the whole Config with its prefixes kept (--train.iterations) and
# booleans taking values. Tools declare ``cfg: ConfigArgs``.
ConfigArgs = typing.Annotated[Config, tyro.conf.arg(name=""), tyro.conf.FlagConversionOff]


def option_names(cls: type, prefix: str = "", in_config: bool = False) -> List[str]:
    """Every ``--option`` a tool dataclass accepts ('train.iterations', 'resume', ...)."""
    out = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        base, marks = (typing.get_args(typ)[0], typing.get_args(typ)[1:]) if typing.get_origin(typ) is typing.Annotated \
            else (typ, ())
        if dataclasses.is_dataclass(base):
            flat = any(getattr(m, "name", None) == "" for m in marks)
            out += option_names(base, prefix if flat else f"{prefix}{f.name}.", in_config or base is Config)
        else:
            out.append(f"{prefix}{f.name}")
    return out


def normalise(argv: Sequence[str]) -> List[str]:
    """['train.iterations=60'] -> ['--train.iterations=60'] (the library API's override form)."""
    return [a if a.startswith("-") or "=" not in a else f"--{a}" for a in map(str, argv)]


def check_keys(cls: type, argv: Sequence[str]) -> None:
    """A one-line SceneError for an unknown or retired ``--key`` (tyro's own message is a multi-line box)."""
    known = set(option_names(cls))
    for a in argv:
        if not a.startswith("--") or a in ("--help",):
            continue
        key = a[2:].split("=", 1)[0].replace("-", "_")
        if key in known:
            continue
        if key in RETIRED:
            raise SceneError(f"command line: --{key} is retired ({RETIRED[key]})")
        near = difflib.get_close_matches(key, sorted(known), n=3)
        hint = f"; did you mean {', '.join('--' + n for n in near)}?" if near else "; see --help"
        raise SceneError(f"command line: unknown config key '{key}'{hint}")


def parse(cls: type, argv: Sequence[str], default: Any, prog: str, description: str):
    """Parse a tool's command line into ``cls`` (a dataclass with a ``cfg: ConfigArgs`` field).

    ``default``: an instance of ``cls`` holding what the command line overrides (the preset or saved
    config); ``tyro.MISSING`` for required fields. Bad keys and values are one-line SceneErrors naming the
    option (and its choices); ``--help`` prints and exits as usual.
    """
    argv = normalise(argv)
    check_keys(cls, argv)
    out = _tyro(cls, argv, default, prog=prog, description=description, config=(tyro.conf.FlagCreatePairsOff,))
    if isinstance(getattr(out, "cfg", None), Config):
        validate(out.cfg)
    return out


def parse_config_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """``cfg`` with ``['--train.iterations', '60', 'mesh.extract=false']`` applied (the library API)."""
    argv = normalise(overrides)
    check_keys(_Overrides, argv)
    return _tyro(_Overrides, argv, _Overrides(cfg=cfg)).cfg


def _tyro(cls: type, argv: List[str], default: Any, **kw):
    """tyro.cli with our value rules; its boxed error (on stderr) becomes a one-line SceneError."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return tyro.cli(cls, args=argv, default=default, registry=REGISTRY, use_underscores=True, **kw)
    except SystemExit as e:
        if e.code in (0, None):  # --help
            raise
        raise SceneError(f"command line: {tyro_error(err.getvalue())}") from None


def tyro_error(text: str) -> str:
    """The message of tyro's boxed error: no title, borders, rules or help pointers."""
    keep = []
    for ln in text.splitlines()[1:]:  # [0]: the box's top edge with the title ("Invalid choice")
        ln = ln.strip("│╭╮╰╯─ ")
        if ln.startswith(("Argument helptext", "For full helptext")):
            break
        if ln:
            keep.append(ln)
    return " ".join(" ".join(keep).split())


@dataclasses.dataclass
class _Overrides:
    cfg: ConfigArgs


def load_config(path: Optional[str | Path] = None, overrides: Optional[List[str]] = None) -> Config:
    """Defaults, then a YAML preset, then ``--key.sub value`` / ``key.sub=value`` overrides.

    ``path``: a YAML file, or a preset's name ('tiny_cpu') from the bundled configs/. Overrides are parsed
    by the same typed parser as the command line (below); errors are SceneErrors.
    """
    cfg = Config()
    if path is not None:
        p = preset_path(path)
        try:
            d = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise SceneError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(d, dict):
            raise SceneError(f"{p}: a config file must be a YAML mapping")
        _apply(cfg, d, "", str(p))
    if overrides:
        cfg = parse_config_overrides(cfg, overrides)
    return validate(cfg)
