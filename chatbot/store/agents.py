"""Agent accounts: support agents and admins of the console (``chatbot agents …`` creates them).

Only an argon2id hash of the password is stored; hashing and checking happen in
``chatbot/agents/auth.py``. ``by_name`` is the only read that returns the hash, because it is the
login's lookup; every other read leaves it empty so a record cannot leak it into a response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from chatbot.store.base import Repository, changed_rows, new_id
from chatbot.store.errors import AgentExists
from chatbot.store.models import Agent


@dataclass(frozen=True)
class AgentRecord:
    id: str
    name: str
    role: str
    active: bool
    created_at: datetime
    password_hash: str = ""
    token_version: int = 0  # tokens issued at another version are refused (logout, password change, disable)

    def public(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "role": self.role}


def _agent(row: Agent, with_hash: bool = False) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        active=bool(row.active),
        created_at=row.created_at,
        password_hash=row.password_hash if with_hash else "",
        token_version=row.token_version or 0,
    )


class AgentRepository(Repository):
    """The ``agents`` table."""

    def create(self, name: str, role: str, password_hash: str) -> AgentRecord:
        try:
            with self._sessions.begin() as session:
                if session.scalar(select(Agent).where(Agent.name == name)) is not None:
                    raise AgentExists(name)
                row = Agent(id=new_id("agt"), name=name, role=role, password_hash=password_hash)
                session.add(row)
                session.flush()
                return _agent(row)
        except IntegrityError:  # a concurrent create of the same name
            raise AgentExists(name) from None

    def by_name(self, name: str) -> AgentRecord | None:
        """The account with its password hash (the login checks it), or None."""
        with self._sessions() as session:
            row = session.scalar(select(Agent).where(Agent.name == name))
            return _agent(row, with_hash=True) if row is not None else None

    def by_id(self, agent_id: str) -> AgentRecord | None:
        with self._sessions() as session:
            row = session.get(Agent, agent_id)
            return _agent(row) if row is not None else None

    def list(self) -> list[AgentRecord]:
        with self._sessions() as session:
            return [_agent(r) for r in session.scalars(select(Agent).order_by(Agent.name))]

    def set_active(self, name: str, active: bool) -> bool:
        """Enable or disable an account. False: no such name.

        Disabling also bumps the token version, so enabling the account later does not bring back the
        tokens issued before: the agent signs in again.
        """
        values: dict[str, object] = {"active": active}
        if not active:
            values["token_version"] = Agent.token_version + 1
        with self._sessions.begin() as session:
            return changed_rows(session.execute(update(Agent).where(Agent.name == name).values(**values))) == 1

    def set_password_hash(self, agent_id: str, password_hash: str) -> None:
        """Replace the hash with one of the same password (the login rehashes when the argon2 parameters
        changed): tokens stay valid. A new password goes through ``change_password``."""
        with self._sessions.begin() as session:
            session.execute(update(Agent).where(Agent.id == agent_id).values(password_hash=password_hash))

    def change_password(self, name: str, password_hash: str) -> bool:
        """A new password: every token issued before stops working (whoever knew the old one is out).
        False: no such name."""
        with self._sessions.begin() as session:
            values = {"password_hash": password_hash, "token_version": Agent.token_version + 1}
            return changed_rows(session.execute(update(Agent).where(Agent.name == name).values(**values))) == 1

    def revoke_tokens(self, agent_id: str) -> bool:
        """Sign out: every token of this agent issued so far stops working, on every device. False: unknown id."""
        with self._sessions.begin() as session:
            bump = update(Agent).where(Agent.id == agent_id).values(token_version=Agent.token_version + 1)
            return changed_rows(session.execute(bump)) == 1
