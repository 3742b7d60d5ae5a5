"""Changes a service may have refused halfway, kept apart in a savepoint.

Services never commit or roll back their caller's session (the request or the runner's unit of
work owns it). Where the database itself may refuse a change (a unique name taken by a concurrent
request, a row another transaction deleted), the service makes that change inside `savepoint`: a
refusal rolls back to the savepoint, the caller's transaction stays usable (a console form can
still read the page it redraws), and the domain error says what went wrong.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import DomainError


@contextmanager
def savepoint(session: Session, refusals: Mapping[str, Callable[[], DomainError]] | None = None) -> Iterator[None]:
    """Run the block in a savepoint flushed at its end. `refusals` maps a constraint's name to the
    domain error its violation means; another IntegrityError propagates unchanged."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError as error:
        for constraint, refusal in (refusals or {}).items():
            if constraint in str(error.orig):
                raise refusal() from None
        raise
