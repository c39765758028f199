"""Fixtures for the bank example: its unit of work and bus over the test database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from examples.bank_account.handlers import BankUnitOfWork, build_bus
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import MessageBus


@pytest.fixture
def bank_uow(session_factory: async_sessionmaker[AsyncSession]) -> Callable[[], BankUnitOfWork]:
    return lambda: BankUnitOfWork(session_factory)


@pytest.fixture
def bank_bus(bank_uow: Callable[[], BankUnitOfWork]) -> MessageBus:
    return build_bus(bank_uow)
