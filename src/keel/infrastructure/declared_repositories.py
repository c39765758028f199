"""``DeclaredRepositories``: the repositories a unit-of-work class declares as annotations.

Both units of work (:class:`keel.SqlAlchemyUnitOfWork` and its in-memory
twin) inherit it: every annotation whose class has a
``for_unit_of_work(uow, model)`` classmethod
(:class:`keel.domain.ports.UnitOfWorkRepository`) is a repository, built for
each ``async with`` and dropped when it ends. ``Repository[Model]`` passes
``Model`` as ``model``. A subclass may map the declared class to another
(the twin maps SQL repositories to their in-memory twins) by overriding
:meth:`DeclaredRepositories._repository_class`.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar

from keel.cross_cutting.error import UnitOfWorkError
from keel.domain.ports import builds_from_unit_of_work

#: (repository class, model or None) of one declared repository.
RepositorySpec = tuple[type[Any], type[Any] | None]


class DeclaredRepositories:
    """Finds, builds and drops the repositories declared on a unit-of-work class."""

    #: name -> (repository class, model); resolved lazily (annotations may be forward
    #: references), per class: empty means not resolved yet.
    _repository_specs: ClassVar[dict[str, RepositorySpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._repository_specs = {}

    @classmethod
    def _declared_repositories(cls) -> dict[str, RepositorySpec]:
        """name -> (repository class to build, model) for every declared repository."""
        specs: dict[str, RepositorySpec] | None = cls.__dict__.get("_repository_specs")
        if specs:
            return specs
        specs = {name: (cls._repository_class(repo), model) for name, (repo, model) in declared_in(cls).items()}
        cls._repository_specs = specs
        return specs

    @classmethod
    def _repository_class(cls, declared: type[Any]) -> type[Any]:
        """The class built for a repository declared as ``declared`` (itself, unless a subclass says otherwise)."""
        return declared

    def _build_repositories(self) -> None:
        """Build every declared repository for this unit of work (the start of an ``async with``)."""
        for name, (repo_cls, model) in self._declared_repositories().items():
            setattr(self, name, repo_cls.for_unit_of_work(self, model))

    def _drop_repositories(self) -> None:
        """Forget the repositories of the ``async with`` that ended."""
        for name in self._declared_repositories():
            self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a declared repository used
        # outside `async with`.
        if not name.startswith("_") and name in _declared_names(type(self)):
            raise UnitOfWorkError(f"{type(self).__name__}.{name} exists only inside `async with uow:`")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def declared_in(cls: type) -> dict[str, RepositorySpec]:
    """Repository annotations of ``cls`` as declared: name -> (repository class, model or None)."""
    specs: dict[str, RepositorySpec] = {}
    for name, hint in _annotations(cls).items():
        origin = typing.get_origin(hint)
        target = origin if isinstance(origin, type) else hint
        if builds_from_unit_of_work(target):
            args = typing.get_args(hint)
            model = args[0] if origin is not None and args and isinstance(args[0], type) else None
            specs[name] = (target, model)
    return specs


def _declared_names(cls: type[DeclaredRepositories]) -> set[str]:
    try:
        return set(cls._declared_repositories())
    except Exception:  # noqa: BLE001 -- never let __getattr__ raise something surprising
        return set()


def _annotations(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 -- get_type_hints raises NameError, TypeError, AttributeError, ...
        # Classes defined inside functions can hold forward references
        # get_type_hints cannot resolve; use what is already evaluated.
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            merged.update(getattr(klass, "__annotations__", {}))
        return merged
