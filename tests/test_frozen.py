"""`@frozen` gives what `@dataclass(frozen=True, slots=True)` gave the classes it replaced: each
behaviour below is checked against a dataclass of the same shape, so the two cannot drift."""

from __future__ import annotations

import builtins
import dataclasses
import dis
import pickle
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import pytest

from proxy.frozen import (
    FrozenInstanceError,
    defined_classes,
    field,
    fields,
    frozen,
    is_frozen,
    replace,
    shapes_module,
    to_dict,
)
from proxy.types import RefusalDelta, Target, TextDelta, ToolCallStart, Usage

REPO = Path(__file__).resolve().parent.parent


def _made() -> list[str]:
    return []


@frozen
class Ours:
    name: str
    count: int = 0
    secret: str = field(default="", repr=False)
    tags: list[str] = field(default_factory=_made, compare=False)
    derived: str = field(default="", init=False)
    LIMIT: ClassVar[int] = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "derived", f"{self.name}:{self.count}")


@dataclasses.dataclass(frozen=True, slots=True)
class Theirs:
    name: str
    count: int = 0
    secret: str = dataclasses.field(default="", repr=False)
    tags: list[str] = dataclasses.field(default_factory=_made, compare=False)
    derived: str = dataclasses.field(default="", init=False)
    LIMIT: ClassVar[int] = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "derived", f"{self.name}:{self.count}")


CALLS: list[tuple[Any, ...]] = [
    ("a",),
    ("a", 2),
    ("a", 2, "key"),
    ("a", 2, "key", ["x"]),
]


@pytest.mark.parametrize("args", CALLS)
def test_construction_repr_eq_and_hash_are_the_dataclass_ones(args: tuple[Any, ...]) -> None:
    ours, theirs = Ours(*args), Theirs(*args)
    assert repr(ours) == repr(theirs).replace("Theirs", "Ours")
    assert "key" not in repr(ours)  # repr=False
    assert [getattr(ours, f.name) for f in fields(ours)] == [
        getattr(theirs, f.name) for f in dataclasses.fields(theirs)
    ]
    assert ours.derived == theirs.derived  # __post_init__ ran, the init=False field was set
    assert ours == Ours(*args)
    assert hash(ours) == hash(Ours(*args))
    assert (ours == Ours(*args, *(["other"] if len(args) == 3 else []))) == (
        theirs == Theirs(*args, *(["other"] if len(args) == 3 else []))
    )


def test_equality_is_by_field_and_exact_class() -> None:
    assert Ours("a", tags=["x"]) == Ours("a", tags=["y"])  # compare=False
    assert Ours("a") != Ours("b")
    assert Ours("a").__eq__(Theirs("a")) is NotImplemented
    assert TextDelta("x") != RefusalDelta("x")  # a subclass is another value
    assert Target("p", "m") == Target("p", "m")
    assert {Target("p", "m"): 1}[Target("p", "m")] == 1
    assert len({Usage(1, 2), Usage(1, 2), Usage(2, 1)}) == 2


def test_the_signature_checks_arguments_as_a_dataclass_does() -> None:
    for cls in (Ours, Theirs):
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'name'"):
            cls()  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="unexpected keyword argument 'derived'"):
            cls("a", derived="x")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="takes from 2 to 5 positional arguments"):
            cls("a", 1, "k", [], "extra")  # type: ignore[call-arg]
    assert Ours(count=4, name="n").count == 4
    assert Ours("a").tags is not Ours("a").tags  # the factory runs per instance


def test_values_are_immutable_and_slotted() -> None:
    value = Ours("a")
    for change in (
        lambda: setattr(value, "name", "b"),
        lambda: setattr(value, "other", 1),
        lambda: delattr(value, "name"),
    ):
        with pytest.raises(FrozenInstanceError):
            change()
    assert isinstance(FrozenInstanceError(), AttributeError)
    assert not hasattr(value, "__dict__")
    assert Ours.__slots__ == ("name", "count", "secret", "tags", "derived")
    assert RefusalDelta.__slots__ == ()  # its field is TextDelta's slot
    assert Ours.LIMIT == 3 and "LIMIT" not in {f.name for f in fields(Ours)}


def test_a_method_the_class_defines_is_kept() -> None:
    assert str(Target("zai", "glm-5")) == "zai,glm-5"
    assert Usage(1, 2) + Usage(3, 4) == Usage(4, 6)

    @frozen
    class Named:
        name: str

        def __repr__(self) -> str:
            return f"<{self.name}>"

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Named) and other.name.lower() == self.name.lower()

    assert repr(Named("x")) == "<x>"
    assert Named("X") == Named("x")
    assert hash(Named("x")) == hash(Named("x"))  # Python's `__hash__ = None` is not kept


def test_a_default_before_a_required_field_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @frozen
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]


def test_replace_fields_and_to_dict() -> None:
    value = Ours("a", 1, "key")
    changed = replace(value, count=5)
    assert (changed.name, changed.count, changed.secret, changed.derived) == ("a", 5, "key", "a:5")
    assert value.count == 1
    with pytest.raises(ValueError, match="'derived' is not an __init__ parameter"):
        replace(value, derived="x")
    with pytest.raises(TypeError, match="unexpected keyword argument 'nosuch'"):
        replace(value, nosuch=1)
    assert [f.name for f in fields(Ours)] == [f.name for f in dataclasses.fields(Theirs)]
    assert [f.repr for f in fields(Ours)] == [f.repr for f in dataclasses.fields(Theirs)]
    assert to_dict(Target("p", "m")) == {"provider": "p", "model": "m"}
    assert is_frozen(value) and not is_frozen(Ours) and not is_frozen(Theirs("a"))
    with pytest.raises(TypeError, match="not a @frozen class"):
        fields(Theirs("a"))


def test_values_pickle_and_copy() -> None:
    import copy

    for value in (Ours("a", 2, "k", ["t"]), RefusalDelta("no"), Usage(1, 2, 3)):
        for again in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
            assert again == value and type(again) is type(value)
            assert repr(again) == repr(value)


def _instructions(function: Any) -> list[str]:
    return [i.opname for i in dis.get_instructions(function) if i.opname != "CACHE"]


def test_the_methods_do_no_more_work_than_the_dataclass_ones() -> None:
    """The daemon makes one event per SSE event and hashes targets per attempt, so the methods
    must not be slower than dataclasses' (timed, interleaved: constructing about 10% faster,
    hashing the same). Shown here without timing, which a shared machine blurs: `__hash__`
    and `__eq__` run the dataclass's instructions, and `__init__` one fewer per field (it
    stores through `object.__setattr__` bound once, not looked up per field)."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Before:
        index: int
        id: str
        name: str

    assert _instructions(ToolCallStart.__hash__) == _instructions(Before.__hash__)
    assert _instructions(ToolCallStart.__eq__) == _instructions(Before.__eq__)
    ours, theirs = _instructions(ToolCallStart.__init__), _instructions(Before.__init__)
    assert len(ours) <= len(theirs) - 3  # one fewer a field
    assert ours.count("LOAD_ATTR") + ours.count("LOAD_METHOD") == 0


def test_making_a_class_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the module is for: dataclasses compiles every method of every class (about 4M
    instructions a class, counted with valgrind; @frozen about 0.3M), and the first compile of
    a process costs a tenth of the interpreter's start-up. A class of a shape that the code
    uses takes its methods from `proxy._frozen_shapes`."""

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("compiled")

    monkeypatch.setattr(builtins, "compile", refuse)

    @frozen
    class Again:
        provider: str
        model: str

    assert Again("p", "m") == Again("p", "m") and hash(Again("p", "m")) == hash(("p", "m"))


def test_the_shapes_module_is_what_the_generator_writes() -> None:
    """`proxy/_frozen_shapes.py` holds the `__init__` of every shape the code defines, so that
    no class of proxy/ or cli/ compiles anything at import. After adding a class of a new
    shape: `.venv/bin/python -m proxy.frozen`."""
    classes = defined_classes()
    assert len(classes) > 100
    written = (REPO / "proxy" / "_frozen_shapes.py").read_text()
    assert written == shapes_module(classes), "run: .venv/bin/python -m proxy.frozen"


def test_a_class_of_a_shape_not_in_the_module_is_compiled_alike() -> None:
    @frozen
    class Odd:
        a: int
        b: list[int] = field(default_factory=list)
        c: int = field(default=7, init=False)
        d: tuple[int, ...] = field(default_factory=tuple, init=False)
        e: int = field(default=0, init=False)
        f: str = "x"

    odd = Odd(1, [2], "y")
    assert (odd.a, odd.b, odd.c, odd.d, odd.e, odd.f) == (1, [2], 7, (), 0, "y")
    assert Odd.__init__.__code__.co_filename == "<frozen>"
    assert Target.__init__.__code__.co_filename.endswith("_frozen_shapes.py")
    assert Target.__init__.__qualname__ == "Target.__init__"
