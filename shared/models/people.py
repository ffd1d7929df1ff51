"""The people of an organisation who use the console, and their one-time password links."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ROLES, Base, one_of, org_fk, stamped_now, uuid_pk

PASSWORD_TOKEN_PURPOSES = ("set", "reset")


class User(Base):
    """A person of one organisation: a role like an API key's, an argon2id password hash
    (null until they follow their first link), and disabled_at once they may not sign in."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(one_of("role", ROLES), name="role_known"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        Index("uq_users_org_email", "org_id", "email", unique=True),
        Index("ix_users_email", "email"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    # Stored lower-cased, so uniqueness and sign-in are case-insensitive.
    email: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = stamped_now()


class PasswordToken(Base):
    """A one-time link to set a password: only the SHA-256 of its token is stored."""

    __tablename__ = "password_tokens"
    __table_args__ = (
        CheckConstraint(one_of("purpose", PASSWORD_TOKEN_PURPOSES), name="purpose_known"),
        Index("ix_password_tokens_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    purpose: Mapped[str] = mapped_column(String(8), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
