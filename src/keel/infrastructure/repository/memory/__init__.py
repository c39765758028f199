"""The in-memory twin of keel's persistence, beside the SQL implementation it twins.

``store`` and ``workspace`` are the "database" and one transaction on it;
``repository`` is :class:`SqlAlchemyRepository`'s twin (sharing
:class:`~keel.infrastructure.repository._base.RepositoryBase` with it) and
``unit_of_work`` is :class:`SqlAlchemyUnitOfWork`'s (sharing the declared
repositories mixin of :mod:`keel.infrastructure.declared_repositories`). Users import
the twins from :mod:`keel.testing`, their one public path; the contract
suites in ``tests/contract`` run every case on SQL and on this package.
"""
