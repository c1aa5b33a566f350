"""`@frozen` gives what `@dataclass(frozen=True, slots=True)` gave the classes it replaced: each
behaviour below is checked against a dataclass of the same shape, so the two cannot drift."""

from __future__ import annotations

import builtins
import dataclasses
import dis
import math
import pickle
from pathlib import Path
from typing import Any, ClassVar, Final, NoReturn

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
    # Read from the class's namespace: mypy does not know a @frozen class's `__slots__`.
    assert vars(Ours)["__slots__"] == ("name", "count", "secret", "tags", "derived")
    assert vars(RefusalDelta)["__slots__"] == ()  # its field is TextDelta's slot
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
        replace(value, nosuch=1)  # type: ignore[call-arg]  # mypy reports it too
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
    stores through each slot's descriptor, bound once, not `object.__setattr__` looked up per
    field)."""

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


def test_init_stores_through_each_slots_own_descriptor() -> None:
    """Issue 16: `object.__setattr__(self, name, value)` finds the field's slot descriptor
    again at every store; `__init__` calls that descriptor's `__set__`, bound when the class
    was made (a frozen base's, for an inherited field)."""

    @frozen
    class Base:
        a: int

    @frozen
    class Child(Base):
        b: str = ""

    stores = Child.__init__.__globals__
    assert stores["_s0"].__self__ is Base.__dict__["a"]
    assert stores["_s1"].__self__ is Child.__dict__["b"]
    child = Child(1, "x")
    assert (child.a, child.b) == (1, "x") and child == Child(1, "x")
    with pytest.raises(FrozenInstanceError):
        child.a = 2  # type: ignore[misc]


def test_making_a_class_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the module is for: dataclasses compiles every method of every class (3.4M
    instructions a class of proxy.types, @frozen 0.36M: tests/bench/bench_frozen.py), and the
    first compile of a process costs a tenth of the interpreter's start-up. A class of a shape
    that the code uses takes its methods from `proxy._frozen_shapes`."""

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


class FinalAnswer:
    """A type merely named like `Final`: a field of that type is a field."""


class ClassVariant:
    """A type merely named like `ClassVar`."""


def test_only_classvar_makes_a_class_attribute() -> None:
    @frozen
    class Ours:
        answer: FinalAnswer
        variant: ClassVariant
        limit: Final[int] = 3  # a field with a default, as in dataclasses
        shared: ClassVar[int] = 1

    @dataclasses.dataclass(frozen=True, slots=True)
    class Theirs:
        answer: FinalAnswer
        variant: ClassVariant
        limit: Final[int] = 3
        shared: ClassVar[int] = 1

    answer, variant = FinalAnswer(), ClassVariant()
    assert [f.name for f in fields(Ours)] == [f.name for f in dataclasses.fields(Theirs)]
    assert [f.name for f in fields(Ours)] == ["answer", "variant", "limit"]
    ours = Ours(answer, variant, 5)
    assert (ours.answer, ours.variant, ours.limit) == (answer, variant, 5)
    assert Ours(answer, variant).limit == 3 and Ours.shared == 1


def test_one_field_values_compare_and_hash_as_tuples() -> None:
    @frozen
    class Ours:
        value: float

    @dataclasses.dataclass(frozen=True, slots=True)
    class Theirs:
        value: float

    ours, theirs = Ours(math.nan), Theirs(math.nan)
    assert theirs == theirs and ours == ours  # a tuple's `==` takes its own item as equal
    assert {ours: 1}[ours] == 1
    assert hash(Ours(1.5)) == hash(Theirs(1.5)) == hash((1.5,))
    assert Ours(1.5) == Ours(1.5) and Ours(1.5) != Ours(2.5)


def test_a_mutable_default_is_refused_as_by_dataclasses() -> None:
    defaults: tuple[Any, ...] = ([], {}, set())
    for default in defaults:
        with pytest.raises(ValueError, match=r"mutable default .* use default_factory"):

            @frozen
            class Plain:
                items: Any = default

        with pytest.raises(ValueError, match="mutable default"):

            @frozen
            class Through:
                items: Any = field(default=default)

    @frozen
    class Fine:
        items: tuple[int, ...] = ()
        made: list[int] = field(default_factory=list)

    assert Fine().items == () and Fine().made is not Fine().made


def test_a_field_without_an_annotation_is_refused() -> None:
    with pytest.raises(TypeError, match="'x' is a field but has no type annotation"):

        @frozen
        class Ours:
            x = field(default=1)


def test_a_field_may_be_named_self() -> None:
    @frozen
    class Ours:
        self: int
        other: int = 0

        def __post_init__(self) -> None:
            object.__setattr__(self, "other", self.self + 1)

    assert Ours(1).self == 1
    assert Ours(self=2).other == 3
    assert replace(Ours(1), self=5) == Ours(5)


def test_initvar_is_refused_not_stored() -> None:
    with pytest.raises(TypeError, match="InitVar is not supported"):

        @frozen
        class Ours:
            a: int
            scale: dataclasses.InitVar[int] = 1


def test_a_class_keeps_its_own_match_args() -> None:
    @frozen
    class Ours:
        a: int
        b: int
        __match_args__ = ("b",)

    assert Ours.__match_args__ == ("b",)
    match Ours(1, 2):
        case Ours(b):
            assert b == 2
    assert Usage.__match_args__[:2] == ("input_tokens", "output_tokens")  # the generated ones


def test_a_value_inside_itself_prints_an_ellipsis() -> None:
    @frozen
    class Ours:
        items: list[Any]

    @dataclasses.dataclass(frozen=True, slots=True)
    class Theirs:
        items: list[Any]

    ours, theirs = Ours([]), Theirs([])
    ours.items.append(ours)
    theirs.items.append(theirs)
    assert repr(ours) == repr(theirs).replace("Theirs", "Ours")
    assert repr(ours).endswith(".Ours(items=[...])")
