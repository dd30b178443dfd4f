"""YAML file -> SweepSpec: parsing, search_space includes, `key=value` overrides."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from collapsetune._numbers import is_number as _is_number
from collapsetune.configs import expected_form, field_hints, fits, unknown_key_hint
from collapsetune.credentials import redact_uri
from collapsetune.errors import SpecError, raise_all
from collapsetune.registry import resolve_trainable, wrapper_search_dirs
from collapsetune.spec._base import kind_of, show, thaw
from collapsetune.spec._distribution import Distribution
from collapsetune.spec._sections import RESERVED, SweepSpec


# Bounds on what one YAML document may cost to read. A sweep file is a few KB and nests
# about 6 levels; these stop hostile input (a "billion laughs" alias bomb, thousands of
# nested brackets, a huge file) with an error in well under a second, not a hang.
MAX_BYTES = 256 * 1024  # per file: the pure-Python parser reads ~100 KB/s on hostile text
MAX_DEPTH = 64  # nesting levels of mappings and lists
MAX_NODES = 50_000  # values in a document once every alias is expanded into a copy
# A search dimension's name in an included fragment: a config key of the wrapper.
_DIMENSION = re.compile(r"[A-Za-z_][\w.-]{0,99}")


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader (no object construction) that reads `1e-4` as a float, rejects duplicate
    keys, and bounds nesting depth and alias expansion.

    PyYAML implements YAML 1.1, where `1e-4` is a *string*: `choice: [1e-4, 1e-3]` would hand
    the model strings. A repeated key silently keeps the last value, hiding typos. An alias
    (`*a`) shares its anchor's object, but everything downstream (freezing, validation, Ray's
    param_space) copies it, so nine nested levels of ten aliases would mean 10^9 values.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._count = 0  # values composed so far, an alias counted as a copy of its anchor
        self._sizes: dict[int, int] = {}  # id(anchored node) -> values in it, aliases expanded
        self._open: set[str] = set()  # anchors whose node is still being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise self._refuse(f"the alias *{event.anchor} is inside its own anchor (a cycle)", event)
            node = super().compose_node(parent, index)
            self._add(self._sizes.get(id(node), 1), event)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._refuse(f"nested deeper than {MAX_DEPTH} levels", event)
        start = self._count
        self._add(1, event)
        if event.anchor is not None:
            self._open.add(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(event.anchor)
        if event.anchor is not None:
            self._sizes[id(node)] = self._count - start
        return node

    def _add(self, values: int, event: yaml.Event) -> None:
        self._count += values
        if self._count > MAX_NODES:
            raise self._refuse(f"more than {MAX_NODES} values once aliases are expanded "
                               "(an alias counts as a copy of what it names)", event)

    @staticmethod
    def _refuse(problem: str, event: yaml.Event) -> yaml.composer.ComposerError:
        return yaml.composer.ComposerError(None, None, problem, event.start_mark)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key_node.tag != "tag:yaml.org,2002:merge":
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+|[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def load_sweep(
    path: str | Path, overrides: Sequence[str] = (), *, base_dir: Path | None = None
) -> SweepSpec:
    """Read, override, expand and validate a sweep file; every problem is reported at once.

    Args:
        path: The sweep YAML file.
        overrides: `key=value` strings with dotted keys (`num_samples=4`,
            `search_space.lr={loguniform: [1e-4, 1e-2]}`, `collapse.0.patience=3`); the value is
            YAML and is applied before validation, so it is checked exactly like the file.
        base_dir: Where includes and a `module:Class` wrapper are looked for; default: the
            file's folder. `resume` passes the original sweep's folder when it reloads the
            resolved copy kept in a results folder.

    Returns:
        The frozen spec. The trainable has been imported once to check it exists; the spec
        keeps the class (`spec.wrapper`), so the launch does not import it again.

    Raises:
        SpecError: one problem, or SpecErrors for several, each naming file, key and expected form.

    Example:
        >>> spec = load_sweep("sweeps/bitnet.yaml", ["num_samples=4"])  # doctest: +SKIP
    """
    path = Path(path)
    file = str(path)
    raw = _read_yaml(path, file)
    if not isinstance(raw, dict):
        raise SpecError(f"the top level must be a mapping of sweep keys "
                        f"({', '.join(SweepSpec.yaml_keys())}), got {kind_of(raw)}", file=file)
    overridden = _apply_overrides(raw, overrides, file)
    base_dir = Path(base_dir).absolute() if base_dir else path.absolute().parent
    errors: list[SpecError] = []
    included: dict[str, str] = {}  # search_space key -> the fragment file it came from
    if isinstance(raw.get("search_space"), Mapping):
        raw["search_space"], included = _expand_includes(raw["search_space"], base_dir, errors)
    # The wrapper is imported here, once per launch: the spec keeps the class for the launch.
    wrapper, wrapper_error = None, None
    if isinstance(raw.get("trainable"), str) and raw["trainable"]:
        try:
            wrapper = resolve_trainable(raw["trainable"], wrapper_search_dirs(base_dir))
        except SpecError as exc:
            wrapper_error = exc.within("trainable")
    extra = {"source": path.absolute(), "base_dir": base_dir, "wrapper": wrapper}
    spec = sound = None
    left_out: set[str] = set()  # keys of `raw` the wrapper is not checked against (they are wrong already)
    try:
        spec = sound = SweepSpec.from_yaml(raw, **extra)
    except SpecError as exc:
        errors.append(exc)
        sound, left_out = _sound_part(raw, exc, **extra)
    if wrapper_error is not None:
        errors.append(wrapper_error)
    elif wrapper is not None and sound is not None:
        errors.extend(e for e in _check_wrapper_config(wrapper, sound) if not _under(e.key, left_out))
    raise_all(_from_override(_from_fragment(e, included, raw), overridden)
              for err in errors for e in err.in_file(file).errors)
    return spec


_STAND_INS = {"name": "sweep", "objective": {"metric": "objective/unset", "mode": "min"}}  # required keys


def _sound_part(raw: Mapping, error: SpecError, **extra: Any) -> tuple[SweepSpec | None, set[str]]:
    """The spec built from what `error` does not blame (a blamed required key stood in for), so
    the wrapper's checks still run beside the sweep's own mistakes: every problem at once.
    Returns it (None when no such spec can be built: an error without a key, or about the
    trainable) and the keys left out or stood in for, whose wrapper checks would mislead."""
    raw, left_out = dict(raw), set()
    for _ in range(3):  # leaving a key out can fail a check across keys (points_to_evaluate): again
        for e in error.errors:
            top, *rest = re.split(r"[.\[]", e.key or "")
            if not top or top == "trainable":
                return None, left_out
            if top in ("config", "search_space") and rest and isinstance(raw.get(top), Mapping):
                raw[top] = {k: v for k, v in raw[top].items() if k != rest[0]}
                left_out.add(f"{top}.{rest[0]}")
            else:
                raw.pop(top, None)
                raw.update({top: _STAND_INS[top]} if top in _STAND_INS else {})
                left_out.add(top)
        try:
            return SweepSpec.from_yaml(raw, **extra), left_out
        except SpecError as exc:
            error = exc
    return None, left_out


def _under(key: str | None, keys: set[str | None]) -> bool:
    """Whether `key` is one of `keys` or inside one (`objective.metric` is inside `objective`)."""
    return key is not None and any(k and (key == k or key.startswith((f"{k}.", f"{k}["))) for k in keys)


def _from_fragment(err: SpecError, included: Mapping[str, str], raw: Mapping) -> SpecError:
    """An error about a dimension an included file gave names that file, and none of its values:
    the file may not be the user's (docs/sweep-format.md, Includes)."""
    key = next((k for k in included if err.key and (err.key == f"search_space.{k}"
                                                     or err.key.startswith((f"search_space.{k}.", f"search_space.{k}[")))),
               None)
    if key is None:
        return err
    message = _without_values(err.message)
    if any(leaf in message for leaf in _leaves(raw["search_space"][key])):
        message = ("the wrapper refuses a value this dimension can give (values from an included file are not "
                   "shown; put the dimension inline to see which)")
    return SpecError(message, file=included[key], key=err.key)


def _without_values(message: str) -> str:
    """`message` without the values it quotes: 'did you mean' hints, quoted strings, and each
    `got ...` clause up to the next `;`."""
    message = re.sub(r"\s*\(did you mean [^)]*\)", "", message)
    message = re.sub(r"""\s*(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", "", message)
    return re.sub(r",?\s*got\b[^;]*", "", message).strip()


def _leaves(value: Any) -> set[str]:
    """The scalars in a (frozen) dimension as text, for checking a message repeats none of them."""
    if isinstance(value, Distribution):
        return _leaves(value.args)
    if isinstance(value, Mapping):
        return set().union(*(_leaves(k) | _leaves(v) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return set().union(*(_leaves(v) for v in value))
    text = str(value)
    return {text} if len(text) >= 3 else set()  # shorter ones ("0", "1e") occur in any message


def _check_wrapper_config(wrapper: type, spec: SweepSpec) -> list[SpecError]:
    """What the wrapper declares (collapsetune.wrapper), checked so a mistake fails here, not on
    a worker: config and search-space keys, value types and values against its `config_class`;
    the objective's and the collapse rules' metrics against its `reported_metrics`; what the
    scheduler needs of it (PBT: state to copy).
    """
    scheduler = [e.within("scheduler") for e in spec.scheduler.wrapper_problems(wrapper)]
    return _config_errors(wrapper, spec) + _metric_errors(wrapper, spec) + scheduler


def _config_errors(wrapper: type, spec: SweepSpec) -> list[SpecError]:
    config_class = getattr(wrapper, "config_class", None)
    if config_class is None:
        return []
    name = spec.trainable
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        return [SpecError(f"{name}.config_class must be a dataclass with one field per config key, "
                          f"got {config_class!r}", key="trainable")]
    valid = [f.name for f in dataclasses.fields(config_class)]
    hints = field_hints(config_class)
    errors = []
    if RESERVED not in valid:
        # The launcher passes the top-level max_iterations to every wrapper (the horizon of its
        # schedules); blaming `config:` would point at a key the user never wrote.
        errors.append(SpecError(f"{name}.config_class ({config_class.__name__}) has no {RESERVED} field; the "
                                f"launcher passes the sweep's top-level {RESERVED} to every wrapper, so its "
                                f"config class must accept it (add `{RESERVED}: int = 10`)", key="trainable"))
    for section, values in (("config", spec.config), ("search_space", spec.search_space)):
        for key, value in values.items():
            if key not in valid:
                errors.append(SpecError(f"{name} has no config key {key!r}{unknown_key_hint(key, valid)}; "
                                        f"valid keys: {', '.join(valid)}", key=f"{section}.{key}"))
                continue
            problem = _type_problem(value, hints[key])
            if problem:
                errors.append(SpecError(f"{name} expects {expected_form(hints[key])}, got {problem}",
                                        key=f"{section}.{key}"))
    if RESERVED not in valid:  # every value would be refused for the missing field: the messages would mislead
        return errors
    # Values are checked with the keys whose names and types are right (a wrong one would be
    # blamed in every message), so one run still shows every problem.
    bad = {e.key for e in errors}
    constants = {**{k: v for k, v in thaw(spec.config).items() if f"config.{k}" not in bad},
                 RESERVED: spec.max_iterations}
    try:
        config_class(**constants)
    except Exception as exc:  # the wrapper's own checks: ValueError by the contract, but any will do
        return [*errors, SpecError(f"{spec.trainable} rejects these values: {exc}", key="config")]
    space = {k: d for k, d in spec.search_space.items() if f"search_space.{k}" not in bad}
    return errors + [SpecError(f"{name} rejects {problem}", key=f"search_space.{key}")
                     for key in space if (problem := _searched_value_problem(config_class, constants, key, space))]


def _type_problem(value: Any, hint: Any) -> str | None:
    """What in a config constant or search dimension is not of the field's type, or None."""
    if not isinstance(value, Distribution):
        return None if fits(thaw(value), hint) else show(value)
    if value.kind in ("uniform", "loguniform"):
        return None if fits(0.5, hint) else f"{value.kind}, which draws non-integer numbers" + (
            " (use randint or choice)" if fits(1, hint) else "")
    if value.kind == "randint":
        return None if fits(1, hint) else "randint, which draws integers"
    bad = [v for v in thaw(value.args) if not fits(v, hint)]
    return f"{show(bad[0])} among the {value.kind} values" if bad else None


def _candidates(dist: Distribution) -> list[tuple[Any, str]]:
    """(value, where it comes from) for the values a dimension can give; a range's bounds stand for it."""
    if dist.kind in ("choice", "grid", "const"):
        return [(v, "") for v in thaw(dist.args)]
    low, high = dist.args
    high = high - 1 if dist.kind == "randint" else high  # randint's high is exclusive
    return [(low, f" (the low bound of {dist.kind} {show(dist.args)})"),
            (high, f" (the high bound of {dist.kind} {show(dist.args)})")]


def _searched_value_problem(config_class: type, constants: dict, key: str,
                            space: Mapping[str, Distribution]) -> str | None:
    """Why `config_class` rejects a value the dimension `key` can give, or None.

    A value is tried with the constants, then beside each candidate of one other searched key,
    so a value that is valid only with another (`decoding: top_k` with a searched `top_k`) passes.
    """
    others = [{other: v} for other, dist in space.items() if other != key for v, _ in _candidates(dist)]
    for value, where in _candidates(space[key]):
        first = None
        for extra in [{}, *others]:
            try:
                config_class(**{**constants, **extra, key: value})
                break
            except Exception as exc:
                first = first or str(exc)
        else:
            return f"{show(value)}{where}: {first}"
    return None


def _metric_errors(wrapper: type, spec: SweepSpec) -> list[SpecError]:
    """The objective and every rule condition must name a metric the wrapper declares it reports.
    A wrapper that declares nothing (no or empty `reported_metrics`) is checked on its first report."""
    declared = getattr(wrapper, "reported_metrics", None)
    if not declared:
        return []
    name = spec.trainable
    if not isinstance(declared, (tuple, list, frozenset, set)) or not all(isinstance(m, str) for m in declared):
        return [SpecError(f"{name}.reported_metrics must be a tuple of metric names, got {show(declared)}",
                          key="trainable")]
    objectives = spec.objective.all
    named = ([("objective.metric", spec.objective.metric)] if len(objectives) == 1
             else [(f"objective[{i}].metric", o.metric) for i, o in enumerate(objectives)])
    for i, rule in enumerate(spec.collapse):
        for j, condition in enumerate(rule.conditions):
            named.append((f"collapse[{i}].all[{j}].metric" if rule.all else f"collapse[{i}].metric", condition.metric))
    return [SpecError(f"{name} never reports {metric!r}{unknown_key_hint(metric, sorted(declared))}; expected one "
                      f"of the metrics it declares: {', '.join(sorted(declared))}", key=key)
            for key, metric in named if metric not in declared]


def spec_to_dict(spec: SweepSpec) -> dict:
    """The resolved spec as plain data in the sweep-file layout (includes expanded, overrides applied).

    `yaml.safe_dump(spec_to_dict(spec))` is a sweep file that loads to an equal spec.
    """
    return spec.to_yaml()


def dump_spec(spec: SweepSpec) -> str:
    """The resolved spec as sweep-file YAML (what `validate` and `run` print, a results folder
    keeps and the parent MLflow run holds), with any password in the tracking URI taken out."""
    data = spec_to_dict(spec)
    if (data.get("mlflow") or {}).get("tracking_uri"):
        data["mlflow"]["tracking_uri"] = redact_uri(data["mlflow"]["tracking_uri"])
    return yaml.safe_dump(data, sort_keys=False)


def param_space(spec: SweepSpec) -> dict:
    """Tuner param_space: config constants, search dimensions as Tune domains, and max_iterations."""
    return {**thaw(spec.config), **{k: d.to_tune() for k, d in spec.search_space.items()},
            "max_iterations": spec.max_iterations}


def _read_yaml(path: Path, file: str, *, echo: bool = True) -> Any:
    """The parsed file. With `echo=False` (a file the sweep only names, e.g. an include) no
    error quotes what was read: it may not be a YAML file at all (`include: /etc/passwd`)."""
    if path.is_dir():
        raise SpecError(f"is a folder; expected a sweep YAML file{_yaml_files_in(path)}", file=file)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror or exc}", file=file) from None
    if len(data) > MAX_BYTES:
        raise SpecError(f"is larger than {MAX_BYTES // 1024} KiB; a sweep file or search-space "
                        "fragment is a few KB of YAML", file=file)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"is not UTF-8 text (byte {exc.start}); expected a YAML file", file=file) from None
    try:
        return _parse(text)
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_problem(exc, echo=echo), file=file) from None


def _yaml_files_in(folder: Path) -> str:
    try:
        names = sorted(p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    except OSError:
        return ""
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"; the YAML files in it: {shown}" if names else ", e.g. sweeps/bitnet_lm.yaml"


def _parse(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except RecursionError:  # _Loader bounds nesting; this is the backstop
        raise yaml.YAMLError(f"nested too deeply (at most {MAX_DEPTH} levels)") from None


def _yaml_problem(exc: yaml.YAMLError, *, echo: bool = True) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if not echo:  # PyYAML quotes the offending text ("found undefined alias 'x'"): drop it
        problem = re.sub(r"""\s*('[^']*'|"[^"]*")""", "", problem)
    return f"invalid YAML at {where}{problem}"


def _expand_includes(space: Mapping, base_dir: Path, errors: list[SpecError]) -> tuple[dict, dict[str, str]]:
    """Fragments first (later ones win), then the inline dimensions over them. Returns the
    merged dimensions and, for those an include gave, the fragment file they came from."""
    includes = space.get("include", [])
    inline = {k: v for k, v in space.items() if k != "include"}
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) and i for i in includes):
        errors.append(SpecError(f"expected a list of YAML file names, got {show(includes)}",
                                key="search_space.include"))
        return inline, {}
    merged: dict = {}
    origin: dict[str, str] = {}
    for name in includes:
        file, dims = _fragment(name, base_dir, errors)
        merged.update(dims)
        origin.update(dict.fromkeys(dims, file))
    for key, value in inline.items():  # an inline value replaces a fragment's: of the same type
        said = f"{origin.get(key)} makes it a {getattr(merged.get(key), 'kind', '')} dimension"
        if key in merged and (problem := _type_change(merged[key], value, said)):
            errors.append(SpecError(problem, key=f"search_space.{key}"))
    return {**merged, **inline}, {k: f for k, f in origin.items() if k not in inline}


def _numeric(dim: Distribution) -> str | None:
    """'an integer' or 'a number' when every value `dim` gives is one, else None."""
    if dim.kind == "randint":
        return "an integer"
    if dim.kind in ("uniform", "loguniform") or all(_is_number(v) for v in dim.args):
        return "a number"
    return None


def _type_change(old: Distribution, new_raw: Any, said: str) -> str | None:
    """Why `new_raw` cannot replace the numeric dimension `old` (e.g. `--set search_space.lr=abc`
    over `lr: {loguniform: ...}`), or None. Ranges are checked by Distribution itself; null
    (often "no limit") may replace a number."""
    expected = _numeric(old)
    try:
        new = Distribution.from_yaml(new_raw)
    except SpecError:
        return None  # reported where the spec is built
    if expected is None or new.kind in ("uniform", "loguniform", "randint"):
        return None
    bad = [v for v in new.args if v is not None and not _is_number(v, integer=expected == "an integer")]
    if not bad:
        return None
    return f"expected {expected} ({said}), got {show(bad[0])}"


def _fragment(name: str, base_dir: Path, errors: list[SpecError]) -> tuple[str, dict]:
    """(the file as errors name it, its dimensions). Only a regular YAML file inside the
    folders includes are read from is opened (a link is followed only while it stays inside),
    and no error repeats what the file holds: it may not be the user's."""
    if not name.endswith((".yaml", ".yml")):  # nothing else is opened: an include is not a file reader
        errors.append(SpecError(f"expected the name of a .yaml or .yml search-space fragment, got {name!r}",
                                key="search_space.include"))
        return name, {}
    roots = list(dict.fromkeys(p.resolve() for p in (base_dir.parent / "search_spaces", base_dir, Path.cwd())))
    places = list(dict.fromkeys(p.absolute() for p in (base_dir.parent / "search_spaces" / name,
                                                         base_dir / name, Path(name))))
    found = next((p for p in places if p.exists() or p.is_symlink()), None)
    if found is None:
        errors.append(SpecError(f"cannot find {name!r}; looked in {', '.join(map(str, places))}",
                                key="search_space.include"))
        return name, {}
    real = found.resolve()
    if not any(real.is_relative_to(root) for root in roots):
        errors.append(SpecError(f"{name!r} leads outside the folders includes are read from "
                                f"({', '.join(map(str, roots))}); a fragment must be a file in one of them, "
                                "and a link is followed only when it stays inside", key="search_space.include"))
        return name, {}
    file = _display(found)
    if not real.is_file():
        errors.append(SpecError("is not a regular file; expected a YAML search-space fragment", file=file))
        return file, {}
    try:
        raw = _read_yaml(real, file, echo=False)
    except SpecError as exc:
        errors.append(exc)
        return file, {}
    if not isinstance(raw, Mapping):
        errors.append(SpecError(f"expected a search-space fragment: a YAML mapping of dimensions such as "
                                f"{{lr: {{loguniform: [1.0e-4, 1.0e-2]}}}}, got {kind_of(raw)}", file=file))
        return file, {}
    dims, odd = {}, []
    for i, (key, value) in enumerate(raw.items(), 1):
        if key == "include":
            errors.append(SpecError("fragments cannot include other fragments", file=file, key="search_space.include"))
        elif not (isinstance(key, str) and _DIMENSION.fullmatch(key)):
            odd.append(i)
        else:
            try:  # parsed here, so an error names the fragment rather than the sweep file
                dims[key] = Distribution.from_yaml(value)
            except SpecError as exc:
                errors.extend(SpecError(_without_values(e.message), file=file, key=e.key)
                              for e in exc.within(f"search_space.{key}").errors)
    if odd:  # one error for the lot: a foreign file would give one per line, each quoting it
        shown = ", ".join(map(str, odd[:5])) + (", ..." if len(odd) > 5 else "")
        errors.append(SpecError(f"{len(odd)} key(s) (entries {shown}) are not dimension names: expected a letter "
                                "or _, then letters, digits, _, . or -, at most 100 characters (keys not shown)",
                                file=file, key="search_space"))
    return file, dims


def _display(path: Path) -> str:
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _apply_overrides(raw: dict, overrides: Sequence[str], file: str) -> list[tuple[str, str]]:
    """Set each `dotted.key=yaml` in `raw`; returns (error-style key, override) pairs applied."""
    valid, applied, errors = SweepSpec.yaml_keys(), [], []
    for override in overrides:
        dotted, sep, text = str(override).partition("=")
        parts = dotted.strip().split(".")
        if not sep or not all(parts):
            errors.append(SpecError(f"override {override!r} must look like key=value with a dotted key, "
                                    "e.g. num_samples=4 or search_space.lr=0.01", file=file))
            continue
        if parts[0] not in valid:
            errors.append(SpecError(f"override {override!r}: unknown key {parts[0]!r}; valid keys: "
                                    f"{', '.join(valid)}", file=file))
            continue
        try:
            value = _parse(text)
        except yaml.YAMLError as exc:
            errors.append(SpecError(f"override {override!r}: the value is not valid YAML: {_yaml_problem(exc)}",
                                    file=file))
            continue
        node = raw
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part)
            if node is None:
                errors.append(SpecError(f"override {override!r}: {'.'.join(parts[:i + 1])} is not a mapping "
                                        "(or a list, for a numeric part)", file=file))
                break
        else:
            last = parts[-1]
            if isinstance(node, list) and not (last.isdigit() and int(last) < len(node)):
                errors.append(SpecError(f"override {override!r}: index {last} is out of range", file=file))
                continue
            index = int(last) if isinstance(node, list) else last
            key = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", dotted.strip())
            if problem := _overridden_type(parts, node[index] if isinstance(node, list) else node.get(last), value):
                errors.append(SpecError(f"override {override!r}: {problem}", file=file, key=key))
                continue
            node[index] = value
            applied.append((key, str(override)))
    raise_all(errors)
    return applied


def _overridden_type(parts: list[str], old: Any, new: Any) -> str | None:
    """An override of a config constant or a search dimension keeps a number a number."""
    if old is None or len(parts) < 2 or parts[0] not in ("config", "search_space"):
        return None
    if parts[0] == "config":
        dim = Distribution("const", (old,))
        new = {"const": new}
    elif len(parts) == 2:
        try:
            dim = Distribution.from_yaml(old)
        except SpecError:
            return None  # the file's own value is wrong: reported with the rest
    else:
        return None  # inside a distribution ({loguniform: [abc, 1]}): Distribution checks it
    return _type_change(dim, new, f"the file makes it {show(dim)}")


def _child(node: Any, part: str) -> Any:
    """The container at `node[part]`, created as a mapping if missing; None when not traversable."""
    if isinstance(node, list):
        return node[int(part)] if part.isdigit() and int(part) < len(node) else None
    if not isinstance(node, dict):
        return None
    if node.get(part) is None:
        node[part] = {}
    child = node[part]
    return child if isinstance(child, (dict, list)) else None


def _from_override(err: SpecError, applied: list[tuple[str, str]]) -> SpecError:
    """Say which override set a bad value: the file itself may be fine."""
    for key, override in reversed(applied):
        if err.key and (err.key == key or err.key.startswith((key + ".", key + "["))):
            return SpecError(f"{err.message} (set by override {override!r})", file=err.file, key=err.key)
    return err
