"""`@frozen` gives what `@dataclass(frozen=True, slots=True)` gave the classes it replaced: each
behaviour below is checked against a dataclass of the same shape, so the two cannot drift."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Any, ClassVar

import pytest

from proxy.frozen import FrozenInstanceError, field, fields, frozen, is_frozen, replace, to_dict
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


def test_constructing_a_stream_event_is_faster_than_the_dataclass_was() -> None:
    """The daemon makes one event per SSE event: the generated `__init__` must not be slower
    than dataclasses' (it stores through a bound `object.__setattr__`, they look it up per
    field). Compared in the same process, best of several rounds."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Before:
        index: int
        id: str
        name: str

    def best(make: Any) -> float:
        return min(timeit.repeat(lambda: make(1, "call_1", "get_weather"), number=20000, repeat=9))

    assert best(ToolCallStart) < best(Before)


def test_making_the_classes_is_cheaper_than_dataclasses() -> None:
    """What the module is for: defining the values at import (the CLI's start-up) costs less
    than dataclasses did. Counted as the time to define the same 20 classes in a fresh
    interpreter each way, best of several runs."""
    body = "\n".join(
        f"@DECO\nclass C{i}:\n    a: int\n    b: str = ''\n    c: tuple[int, ...] = ()\n"
        for i in range(20)
    )
    ours = "from proxy.frozen import frozen as DECO\nimport time\nt = time.perf_counter()\n"
    theirs = (
        "import dataclasses\nDECO = dataclasses.dataclass(frozen=True, slots=True)\n"
        "import time\nt = time.perf_counter()\n"
    )

    def cost(prelude: str) -> float:
        script = prelude + body + "\nprint(time.perf_counter() - t)"
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", script],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(5)
        ]
        return min(runs)

    assert cost(ours) * 3 < cost(theirs)
