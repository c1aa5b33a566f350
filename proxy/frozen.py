"""`@frozen`: immutable, slotted value classes, made cheaply at import.

What `@dataclass(frozen=True, slots=True)` gives (`__init__` with defaults and
`field(default_factory=...)`, `__post_init__`, `__repr__` without the `repr=False` fields,
`__eq__` and `__hash__` over the `compare=True` fields of the same class, assignment refused,
pickling), for about a tenth of the instructions it takes to define the classes: dataclasses
compiles every method of every class, and the CLI's start-up defines some sixty. Counted by
tests/bench/bench_frozen.py (valgrind callgrind; a bare interpreter is about 90M): proxy.types'
19 classes 6.8M against 65.3M as dataclasses (0.36M a class against 3.4M); importing
proxy.types whole 34M against 134M (0.25, with the enums and functions that cost the same
either way); this module 1.7M against 44M for `dataclasses`, a saving the CLI does not see
while something else imports `dataclasses` (orjson's import does).

Here `__init__`, `__eq__` and `__hash__` are code written once per shape (how many fields, which
are parameters, which have a default factory) with placeholder names `f0`, `f1`..., which each
class gets renamed to its fields (`CodeType.replace`). The shapes the code uses are functions of
the generated `proxy/_frozen_shapes.py`, so that no class compiles anything; another shape is
compiled once. The rest are shared functions. `__init__` stores each field through its slot's
descriptor's `__set__`, bound once when the class is made (dataclasses call
`object.__setattr__(self, name, value)`, which looks the descriptor up again at every store).

A class defining one of those methods itself keeps its own, as with dataclasses. `replace`,
`fields` and `to_dict` are this module's counterparts of `dataclasses.replace`, `fields` and
(one level deep) `asdict`.
Refused, as by dataclasses: a mutable (unhashable) default, a `field()` without an annotation.
Refused, unlike dataclasses (nothing here uses them): `InitVar`, `kw_only`, `field(hash=...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cache
from reprlib import recursive_repr
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar, dataclass_transform, overload

T = TypeVar("T")
FIELDS: Final = "__frozen_fields__"


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
_FACTORY: Final = _Missing()  # the default of a parameter whose field has a default_factory


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) an attribute of a frozen value."""


class Field:
    """One field of a frozen class, as `fields()` reports it."""

    __slots__ = ("compare", "default", "default_factory", "init", "name", "repr")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


@overload
def field(*, default: T, init: bool = True, repr: bool = True, compare: bool = True) -> T: ...
@overload
def field(
    *, default_factory: Callable[[], T], init: bool = True, repr: bool = True, compare: bool = True
) -> T: ...
@overload
def field(*, init: bool = True, repr: bool = True, compare: bool = True) -> Any: ...
def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    init: bool = True,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """A field's options, as `dataclasses.field`."""
    return Field(default, default_factory, init, repr, compare)


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def frozen(cls: type[T]) -> type[T]:
    """The class, made again with `__slots__` and its methods (see the module docstring)."""
    own = cls.__dict__
    inherited: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for known in base.__dict__.get(FIELDS, ()):
            inherited[known.name] = known
    fields_ = dict(inherited)
    annotations = own.get("__annotations__", {})
    for name, annotation in annotations.items():
        kind = _annotation_kind(annotation)
        if kind == "InitVar":
            raise TypeError(f"{cls.__qualname__}.{name}: InitVar is not supported by @frozen")
        if kind != "ClassVar":
            value = own.get(name, MISSING)
            spec = value if isinstance(value, Field) else Field(default=value)
            if type(spec.default).__hash__ is None:
                # As dataclasses: one list (dict, set...) would be shared by every value.
                raise ValueError(
                    f"mutable default {type(spec.default)} for field {name} is not allowed: "
                    "use default_factory"
                )
            spec.name = name
            fields_[name] = spec
    for name, value in own.items():
        if isinstance(value, Field) and name not in annotations:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    methods = _methods(cls.__qualname__, tuple(fields_.values()), hasattr(cls, "__post_init__"))
    # What the class defines itself stays, as with dataclasses.
    namespace = {**SHARED, **methods, **{k: v for k, v in own.items() if k not in fields_}}
    if own.get("__hash__", MISSING) is None and "__eq__" in own:
        # Python's `__hash__ = None` beside the class's own `__eq__`: hashed by its fields.
        namespace["__hash__"] = methods["__hash__"]
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__slots__"] = tuple(name for name in fields_ if name not in inherited)
    namespace["__qualname__"] = cls.__qualname__
    namespace[FIELDS] = tuple(fields_.values())
    if "__match_args__" not in own:
        namespace["__match_args__"] = tuple(f.name for f in fields_.values() if f.init)
    metaclass: type = type(cls)
    made: type[T] = metaclass(cls.__name__, cls.__bases__, namespace)
    _bind_setters(made, methods["__init__"], tuple(fields_.values()))
    return made


def _bind_setters(made: type, init: FunctionType, fields_: tuple[Field, ...]) -> None:
    """Give `__init__` each field's store: the `__set__` of its slot's descriptor (the class's
    own, or a frozen base's), bound once: the slots exist only once the class is made. Calling
    it costs about half of `object.__setattr__(self, name, value)`, which finds that descriptor
    again at every store, and the daemon makes many values per request."""
    scope = init.__globals__
    for i, f in enumerate(fields_):
        scope[f"_s{i}"] = getattr(made, f.name).__set__


def _annotation_kind(annotation: object) -> str:
    """The annotation's role, from its outermost name: `ClassVar`, `InitVar`, or "" for a
    field. The annotations are strings here (`from __future__ import annotations`); a type
    merely named like `ClassVariant` is a field, and `Final` is a field, as in dataclasses."""
    text = annotation if isinstance(annotation, str) else repr(annotation)
    head = text.partition("[")[0].strip()
    if head in ("ClassVar", "typing.ClassVar"):
        return "ClassVar"
    if head in ("InitVar", "dataclasses.InitVar"):
        return "InitVar"
    return ""


def _methods(qualname: str, fields_: tuple[Field, ...], post: bool) -> dict[str, Any]:
    """`__init__`, `__eq__` and `__hash__` of the class `qualname`. `__init__`'s code is
    compiled once per shape (which fields are parameters, which have a default factory), then
    given the field names; its parameters' defaults are the function's own `__defaults__`."""
    scope: dict[str, Any] = {"_FACTORY": _FACTORY}  # and each field's `_s{i}`: `_bind_setters`
    defaults: list[Any] = []
    for i, f in enumerate(fields_):
        scope[f"_d{i}"] = f.default
        scope[f"_f{i}"] = f.default_factory
        if not f.init:
            continue
        if f.default is not MISSING:
            defaults.append(f.default)
        elif f.default_factory is not MISSING:
            defaults.append(_FACTORY)
        elif defaults:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    shape = "".join(_kind(f) for f in fields_)
    names = {f"f{i}": f.name for i, f in enumerate(fields_)}
    compared = {f"f{i}": f.name for i, f in enumerate(f for f in fields_ if f.compare)}
    codes = {
        "__init__": _renamed(_init_code(shape, post), names, qualname, "__init__"),
        "__eq__": _renamed(_compare_code("eq", len(compared)), compared, qualname, "__eq__"),
        "__hash__": _renamed(_compare_code("hash", len(compared)), compared, qualname, "__hash__"),
    }
    return {
        name: FunctionType(code, scope, name, tuple(defaults) if name == "__init__" else None)
        for name, code in codes.items()
    }


def _renamed(code: CodeType, names: dict[str, str], qualname: str, name: str) -> CodeType:
    """A template's code with its placeholders `f0`, `f1`... (parameters and attributes; the
    stores `_s0`, `_s1`... keep their names) replaced by the field names."""
    return code.replace(
        co_varnames=tuple(names.get(n, n) for n in code.co_varnames),
        co_names=tuple(names.get(n, n) for n in code.co_names),
        co_consts=tuple(names.get(c, c) if isinstance(c, str) else c for c in code.co_consts),
        co_name=name,
        co_qualname=f"{qualname}.{name}",
    )


def _kind(f: Field) -> str:
    """p: a parameter, f: one with a default factory; D, F: a field set from its default or
    its factory without being a parameter; x: a field `__post_init__` sets."""
    if f.init:
        return "p" if f.default_factory is MISSING else "f"
    if f.default is not MISSING:
        return "D"
    return "F" if f.default_factory is not MISSING else "x"


@cache
def _init_code(shape: str, post: bool) -> CodeType:
    """`__init__` of a class of this shape, with placeholders `f0`, `f1`... for the field names
    (its parameters), each stored through `_s0`, `_s1`... (`_bind_setters`)."""
    return _template(_template_name(shape, post), init_source(shape, post, "__init__"))


@cache
def _compare_code(kind: str, count: int) -> CodeType:
    """`__eq__` or `__hash__` over `count` fields named `f0`, `f1`..."""
    return _template(f"{kind}_{count}", compare_source(kind, count, f"__{kind}__"))


def _template(name: str, source: str) -> CodeType:
    """The code of `name` in `proxy._frozen_shapes` when it is there, else of `source`,
    compiled now (compiling anything costs about a tenth of the interpreter's start-up the
    first time)."""
    from proxy import _frozen_shapes

    template = getattr(_frozen_shapes, name, None)
    if template is not None:
        code: CodeType = template.__code__
        return code
    scope: dict[str, Any] = {}
    exec(compile(source, "<frozen>", "exec"), scope)
    code = next(iter(v for k, v in scope.items() if k != "__builtins__")).__code__
    return code


def _template_name(shape: str, post: bool) -> str:
    return f"init_{shape}_post" if post else f"init_{shape}"


def init_source(shape: str, post: bool, name: str) -> str:
    """The source of the `__init__` of a class of `shape` (see `_kind`). The instance is
    `__frozen_self__`, so that a field may be named `self` (dataclasses' `__dataclass_self__`)."""
    stores = {
        "p": "_s{i}(__frozen_self__, f{i})",
        "f": "_s{i}(__frozen_self__, _f{i}() if f{i} is _FACTORY else f{i})",
        "D": "_s{i}(__frozen_self__, _d{i})",
        "F": "_s{i}(__frozen_self__, _f{i}())",
        "x": "pass",
    }
    params = "".join(f", f{i}" for i, kind in enumerate(shape) if kind in "pf")
    body = [stores[kind].format(i=i) for i, kind in enumerate(shape)]
    body.append("__frozen_self__.__post_init__()" if post else "pass")
    return "\n    ".join([f"def {name}(__frozen_self__{params}):", *body]) + "\n"


def compare_source(kind: str, count: int, name: str) -> str:
    """The source of `__eq__` or `__hash__` over `count` fields."""
    mine = "".join(f"self.f{i}, " for i in range(count)).rstrip(" ")
    if kind == "hash":
        return f"def {name}(self):\n    return hash(({mine}))\n"
    theirs = mine.replace("self.", "other.")
    return (
        f"def {name}(self, other):\n"
        f"    if other.__class__ is self.__class__:\n"
        f"        return ({mine}) == ({theirs})\n"
        f"    return NotImplemented\n"
    )


def shapes_module(classes: Sequence[type]) -> str:
    """The source of `proxy/_frozen_shapes.py` for these @frozen classes."""
    shapes = sorted(
        {("".join(_kind(f) for f in fields(c)), hasattr(c, "__post_init__")) for c in classes}
    )
    counts = sorted({sum(f.compare for f in fields(c)) for c in classes})
    functions = [init_source(shape, post, _template_name(shape, post)) for shape, post in shapes]
    functions += [compare_source(kind, n, f"{kind}_{n}") for n in counts for kind in ("eq", "hash")]
    return SHAPES_HEADER + "\n\n" + "\n\n".join(functions)


SHAPES_HEADER = '''"""The `__init__` of @frozen classes, one function per shape (which fields
are parameters, which have a default factory: `proxy.frozen`), so that making the classes
compiles nothing. Generated by `python -m proxy.frozen` (excluded from ruff; mypy reads it only
for syntax); tests/test_frozen.py checks that it is what that writes for every @frozen class
of proxy/ and cli/. A class of a shape missing here has its `__init__` compiled at import.
"""

# mypy: ignore-errors
'''


@recursive_repr()  # a value inside its own list prints `...`, as dataclasses do
def _repr(self: Any) -> str:
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}" for f in getattr(self, FIELDS) if f.repr
    )
    return f"{type(self).__qualname__}({shown})"


def _setattr(self: Any, name: str, value: Any) -> NoReturn:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> NoReturn:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in getattr(self, FIELDS))


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for f, value in zip(getattr(self, FIELDS), state, strict=True):
        object.__setattr__(self, f.name, value)


SHARED: Final = {
    "__repr__": _repr,
    "__setattr__": _setattr,
    "__delattr__": _delattr,
    "__getstate__": _getstate,
    "__setstate__": _setstate,
}


def fields(value: object) -> tuple[Field, ...]:
    """The fields of a frozen class or instance, in order (`dataclasses.fields`)."""
    try:
        found: tuple[Field, ...] = getattr(value, FIELDS)
    except AttributeError:
        raise TypeError(f"{value!r} is not a @frozen class or instance") from None
    return found


def is_frozen(value: object) -> bool:
    """Whether `value` is an instance of a @frozen class."""
    return hasattr(type(value), FIELDS)


if TYPE_CHECKING:
    # mypy checks the names and types of `dataclasses.replace`'s keywords against the class,
    # @frozen ones included (they are `dataclass_transform` classes); it cannot check ours.
    from dataclasses import replace as replace
else:

    def replace(value: T, /, **changes: Any) -> T:
        """A copy of `value` with `changes` (`dataclasses.replace`): built through `__init__`,
        so `__post_init__` runs again."""
        for f in fields(value):
            if not f.init:
                if f.name in changes:
                    raise ValueError(f"field {f.name!r} is not an __init__ parameter")
            elif f.name not in changes:
                changes[f.name] = getattr(value, f.name)
        return type(value)(**changes)


def to_dict(value: object) -> dict[str, Any]:
    """`{name: value}` of each field, the values as they are (not converted further, unlike
    `dataclasses.asdict`)."""
    return {f.name: getattr(value, f.name) for f in fields(value)}


def defined_classes(packages: Iterable[str] = ("proxy", "cli")) -> list[type]:
    """Every @frozen class defined at the top of a module of these packages (imported now)."""
    import importlib
    import pkgutil

    classes: list[type] = []
    for package in packages:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.endswith("__main__"):  # that one would run the CLI
                module = importlib.import_module(info.name)
                classes += [
                    v for v in vars(module).values() if FIELDS in getattr(v, "__dict__", {})
                ]
    return classes


def _main() -> None:
    """Write `proxy/_frozen_shapes.py` for every @frozen class of proxy/ and cli/."""
    from pathlib import Path

    Path(__file__).with_name("_frozen_shapes.py").write_text(shapes_module(defined_classes()))


if __name__ == "__main__":  # through the imported module: its MISSING is the fields' one
    from proxy.frozen import _main as main

    main()
