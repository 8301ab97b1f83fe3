"""Checks of what a plugin declares, made once when it is registered rather than per job.

:func:`declaration_problems` lists what is wrong with a plugin class's metadata (a search-space
key or profile parameter that ``__init__`` does not take, a featurizer nobody registered, an
option a featurizer does not declare); the registry keeps the list with the entry and refuses to
hand the plugin to a run. :func:`check_options` validates a featurizer's options against the
``options`` its class declares, the moment it is built.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from .errors import ConfigError

FEATURE_KINDS = ("tabular", "text", "graph")
TASKS = ("regression", "classification")


# -- featurizer options ---------------------------------------------------------------------------
def _init_parameters(cls) -> tuple[dict[str, inspect.Parameter], bool]:
    """``__init__``'s named parameters (without self) and whether it also takes ``**kwargs``."""
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named, var_kw


def option_specs(featurizer_cls) -> dict[str, Any]:
    """Option name -> declared type or range. Without ``options``, the keyword parameters of the
    class's ``__init__`` are accepted unchecked (``Any``); the base ``__init__(**params)`` takes none."""
    declared = getattr(featurizer_cls, "options", None) or {}
    if declared:
        return dict(declared)
    named, _ = _init_parameters(featurizer_cls)
    return {name: Any for name in named}


def _is_spec(spec) -> bool:
    from .base import Categorical, Integer, Real

    return spec is Any or isinstance(spec, (Real, Integer, Categorical)) or spec in (str, bool, int, float)


def describe_spec(spec) -> str:
    from .base import Categorical, Integer, Real

    if isinstance(spec, Integer):
        return f"an integer in [{spec.low}, {spec.high}]"
    if isinstance(spec, Real):
        return f"a number in [{spec.low:g}, {spec.high:g}]"
    if isinstance(spec, Categorical):
        return "one of " + ", ".join(map(str, spec.choices))
    return {str: "a string", bool: "True or False", int: "an integer", float: "a number"}.get(spec, "any value")


def fits(spec, value) -> bool:
    from .base import Categorical, Integer, Real

    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(spec, Categorical):
        return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in spec.choices)
    if isinstance(spec, Integer):
        return isinstance(value, int) and not isinstance(value, bool) and spec.low <= value <= spec.high
    if isinstance(spec, Real):
        return number and math.isfinite(value) and spec.low <= value <= spec.high
    if spec is bool:
        return isinstance(value, bool)
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec is float:
        return number
    if spec is str:
        return isinstance(value, str)
    return True


def _none_allowed(featurizer_cls, name: str) -> bool:
    """None is a valid value where ``__init__``'s default for the option is None ('not set')."""
    named, _ = _init_parameters(featurizer_cls)
    return name in named and named[name].default is None


def check_options(featurizer_cls, params: dict) -> dict:
    """Raise a one-line :class:`ConfigError` for an unknown or out-of-range featurizer option."""
    from .registry import suggest

    specs = option_specs(featurizer_cls)
    name = featurizer_cls.name
    for key, value in params.items():
        if key not in specs:
            known = suggest(key, specs, list_up_to=len(specs)) if specs else " (it takes no options)"
            raise ConfigError(f"featurizer '{name}' has no option '{key}'{known}")
        spec = specs[key]
        if value is None and _none_allowed(featurizer_cls, key):
            continue
        if not fits(spec, value):
            none = " or None" if _none_allowed(featurizer_cls, key) else ""
            raise ConfigError(f"featurizer '{name}': option {key}={value!r} is invalid; {key} must be {describe_spec(spec)}{none}")
    return params


# -- declarations ---------------------------------------------------------------------------------
def _space_problems(where: str, space, params: set[str], cls_name: str) -> list[str]:
    if not isinstance(space, dict):
        return [f"{where} must be a dict of parameter -> distribution, got {type(space).__name__}"]
    problems = []
    for key in space:  # a value is a distribution (Real, Integer, Categorical) or a value the space fixes
        if key not in params:
            problems.append(f"{where} names '{key}', which is not an __init__ parameter of {cls_name} "
                            f"(parameters: {', '.join(sorted(params))})")
    return problems


def model_problems(cls, featurizers: dict | None) -> list[str]:
    from . import base
    from .base import Model, Profile

    if not (isinstance(cls, type) and issubclass(cls, Model)):
        return [f"{cls!r} is not a subclass of synbench.base.Model"]
    problems = []
    tasks = getattr(cls, "tasks", ())
    if not tasks or not set(tasks) <= set(TASKS):
        problems.append(f"tasks must name regression and/or classification, got {tuple(tasks)!r}")
    params = set(cls.param_names())
    cls_name = cls.__name__
    problems += _space_problems("search_space", getattr(cls, "search_space", {}), params, cls_name)
    spaces = getattr(cls, "search_spaces", {}) or {}
    if not isinstance(spaces, dict):
        problems.append(f"search_spaces must be a dict of protocol -> search space, got {type(spaces).__name__}")
        spaces = {}
    protocols = getattr(base, "PROTOCOLS", None)
    for protocol, space in spaces.items():  # keys: "<protocol>" or "<protocol>:<task>"
        name, _, task = str(protocol).partition(":")
        if (protocols and name not in protocols) or (task and task not in TASKS):
            known = ", ".join(protocols or ()) or "?"
            problems.append(f"search_spaces key '{protocol}' must be PROTOCOL or PROTOCOL:TASK (protocols: {known}; "
                            f"tasks: {', '.join(TASKS)})")
        problems += _space_problems(f"search_spaces['{protocol}']", space, params, cls_name)
    profiles = getattr(cls, "profiles", {})
    if not isinstance(profiles, dict):
        problems.append("profiles must be a dict of name -> Profile")
        profiles = {}
    for pname, profile in profiles.items():
        if not isinstance(profile, Profile):
            problems.append(f"profile '{pname}' must be a synbench.base.Profile, got {type(profile).__name__}")
            continue
        unknown = sorted(set(profile.params) - params)
        if unknown:
            problems.append(f"profile '{pname}' sets {', '.join(map(repr, unknown))}, not __init__ parameters of {cls_name} "
                            f"(parameters: {', '.join(sorted(params))})")
    specs = getattr(cls, "featurizers", ())
    if isinstance(specs, str) or not isinstance(specs, (list, tuple)):
        problems.append(f"featurizers must be a tuple of featurizer names, got {specs!r}")
        specs = ()
    if featurizers is not None:
        problems += [p for spec in specs for p in spec_problems(spec, featurizers)]
    return problems


def spec_problems(spec: str, featurizers: dict) -> list[str]:
    """What is wrong with a featurizer spec ``name[:opt=value,...]`` given the registered classes."""
    from .errors import SynbenchError
    from .features import parse_spec
    from .registry import suggest

    try:
        name, params = parse_spec(spec)
    except SynbenchError as exc:
        return [str(exc)]
    if name not in featurizers:
        return [f"featurizer '{name}' is not registered{suggest(name, featurizers)}"]
    try:
        check_options(featurizers[name], params)
    except ConfigError as exc:
        return [str(exc)]
    return []


def featurizer_problems(cls) -> list[str]:
    from .base import Featurizer

    if not (isinstance(cls, type) and issubclass(cls, Featurizer)):
        return [f"{cls!r} is not a subclass of synbench.base.Featurizer"]
    problems = []
    if cls.kind not in FEATURE_KINDS:
        problems.append(f"kind must be one of {', '.join(FEATURE_KINDS)}, got {cls.kind!r}")
    needs = getattr(cls, "needs", ())
    if isinstance(needs, str) or not all(isinstance(n, str) for n in needs):
        problems.append(f"needs must be a tuple of strings, got {needs!r}")
    declared = getattr(cls, "options", None) or {}
    if not isinstance(declared, dict):
        return problems + [f"options must be a dict of option -> type or range, got {type(declared).__name__}"]
    named, var_kw = _init_parameters(cls)
    for key, spec in declared.items():
        if not _is_spec(spec):
            problems.append(f"option '{key}' must be declared as Real, Integer, Categorical, str, bool, int or float, got {spec!r}")
            continue
        if key not in named and not var_kw:
            problems.append(f"option '{key}' is not an __init__ parameter of {cls.__name__}")
            continue
        default = named[key].default if key in named else inspect.Parameter.empty
        if default not in (inspect.Parameter.empty, None) and not fits(spec, default):
            problems.append(f"the default {key}={default!r} is outside its declared range ({describe_spec(spec)})")
    return problems


def dataset_problems(cls) -> list[str]:
    from .base import Dataset

    if not (isinstance(cls, type) and issubclass(cls, Dataset)):
        return [f"{cls!r} is not a subclass of synbench.base.Dataset"]
    schemes = getattr(cls, "split_schemes", ())
    if isinstance(schemes, str) or not all(isinstance(s, str) and s for s in schemes):
        return [f"split_schemes must be a tuple of scheme names, got {schemes!r}"]
    return []


def metric_problems(obj) -> list[str]:
    from .metrics import Metric

    if not isinstance(obj, Metric):
        return [f"{obj!r} is not a synbench.metrics.Metric"]
    problems = []
    if obj.task not in TASKS:
        problems.append(f"task must be regression or classification, got {obj.task!r}")
    if not isinstance(obj.higher_is_better, bool):
        problems.append("higher_is_better must be True or False")
    if not callable(obj.fn):
        problems.append("fn must be callable")
    return problems


def declaration_problems(kind: str, obj, featurizers: dict | None = None) -> list[str]:
    """Every problem with one plugin's declarations; ``featurizers`` (name -> class) are the
    registered featurizers that a model's featurizer specs must name."""
    try:
        if kind == "model":
            return model_problems(obj, featurizers)
        if kind == "featurizer":
            return featurizer_problems(obj)
        if kind == "dataset":
            return dataset_problems(obj)
        if kind == "metric":
            return metric_problems(obj)
    except Exception as exc:  # a declaration so malformed that inspecting it fails is a problem too
        return [f"its declarations could not be read: {type(exc).__name__}: {exc}"]
    return []
