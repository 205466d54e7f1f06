"""Accounts, sessions, password resets and email confirmation. Plain functions: no request, one
commit per call."""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from auth_service.errors import EmailTaken, InvalidCredentials, InvalidResetToken, InvalidVerificationToken
from auth_service.jobs import JobQueue
from auth_service.mail import send_mail
from auth_service.models import EmailVerificationToken, PasswordResetToken, Session, User
from auth_service.passwords import hash_password, needs_upgrade, verify_password
from shared.config import Settings
from shared.db import db, utcnow
from shared.tokens import session_codec

logger = logging.getLogger(__name__)

PASSWORD_RESET_JOB = "password_reset"  # noqa: S105 (a job name)


@dataclass(frozen=True)
class SignedIn:
    user: User
    session_token: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


def register_user(settings: Settings, email: str, password: str) -> SignedIn:
    """Create an account and its first session; 409 email_taken if the email is in use."""
    password_hash = hash_password(password, settings.bcrypt_rounds, settings.password_pepper)
    user = User(email=normalize_email(email), password_hash=password_hash)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken() from None
    signed_in = _start_session(settings, user)
    db.session.commit()
    logger.info("user registered", extra={"user_id": user.id})
    if settings.free_require_verified_email:
        _mail_verification_link(settings, user)
    return signed_in


@functools.cache
def dummy_hash(rounds: int, pepper: str) -> str:
    """Checked when the email is unknown, so both failures cost the same bcrypt work. Built at start
    (the factory calls it), so the first unknown-email login does not pay for making it."""
    return hash_password(secrets.token_hex(16), rounds, pepper)


def authenticate(settings: Settings, email: str, password: str) -> SignedIn:
    """Check the password and start a session; the same 401 for an unknown email or a wrong password."""
    user = db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))
    if user is None:
        dummy = dummy_hash(settings.bcrypt_rounds, settings.password_pepper)
        verify_password(password, dummy, settings.password_pepper)
        raise InvalidCredentials()
    if not verify_password(password, user.password_hash, settings.password_pepper):
        logger.info("login failed", extra={"user_id": user.id})
        raise InvalidCredentials()
    if needs_upgrade(user.password_hash):
        # Made before the pepper: the password was just proven, so store it the current way.
        user.password_hash = hash_password(password, settings.bcrypt_rounds, settings.password_pepper)
        logger.info("password hash upgraded", extra={"user_id": user.id})
    signed_in = _start_session(settings, user)
    db.session.commit()
    return signed_in


def _start_session(settings: Settings, user: User) -> SignedIn:
    ttl = timedelta(hours=settings.session_ttl_hours)
    session = Session(user_id=user.id, expires_at=utcnow() + ttl)
    db.session.add(session)
    db.session.flush()
    token = session_codec(settings, signing=True).encode(
        {"uid": user.id, "sid": session.id}, ttl.total_seconds()
    )
    return SignedIn(user=user, session_token=token)


def end_session(session_id: str) -> None:
    """Revoke one session: its cookie, even replayed, no longer works."""
    db.session.execute(
        sa.update(Session)
        .where(Session.id == session_id, Session.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.session.commit()


def live_session_user(session_id: str) -> str | None:
    """The user of a session that is neither revoked nor expired, else None."""
    return db.session.scalar(
        sa.select(Session.user_id).where(
            Session.id == session_id, Session.revoked_at.is_(None), Session.expires_at > utcnow()
        )
    )


def get_user(user_id: str) -> User | None:
    return db.session.get(User, user_id)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def request_password_reset(jobs: JobQueue, email: str) -> None:
    """Queue the reset: the same (tiny) work whether or not the account exists, so the answer
    cannot tell; an unreachable mail server is retried by the job, never seen by the caller."""
    jobs.enqueue({"kind": PASSWORD_RESET_JOB, "email": normalize_email(email)})


def run_job(settings: Settings, job: dict) -> None:
    """One queued job (raise to have it retried)."""
    if job.get("kind") == PASSWORD_RESET_JOB:
        mail_password_reset(settings, job["email"])
    else:
        logger.error("unknown job dropped", extra={"job": job.get("kind")})


def mail_password_reset(settings: Settings, email: str) -> None:
    """Mail a one-time reset link if the account exists. A retry after a failed send makes a new
    token: the unsent one's plaintext was never shown to anyone, and it expires unused."""
    user = db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))
    if user is None:
        logger.info("password reset requested for an unknown email")
        return
    token = secrets.token_urlsafe(32)
    db.session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=_hash_token(token),
            expires_at=utcnow() + timedelta(minutes=settings.password_reset_ttl_minutes),
        )
    )
    db.session.commit()
    link = f"{settings.app_base_url}/reset?token={quote(token)}"
    send_mail(
        settings,
        to=user.email,
        subject="Reset your KeyLM password",
        body=(
            "Someone asked to reset the password of your KeyLM account.\n\n"
            f"To choose a new password, open this link within "
            f"{settings.password_reset_ttl_minutes} minutes:\n\n{link}\n\n"
            "If it was not you, ignore this mail: your password stays as it is.\n"
        ),
    )
    logger.info("password reset mailed", extra={"user_id": user.id})


def confirm_password_reset(settings: Settings, token: str, new_password: str) -> None:
    """Spend the token and every other unused one of that user, set the password, end every session."""
    now = utcnow()
    user_id = _spend_tokens(PasswordResetToken, token, now)
    if user_id is None:
        db.session.rollback()
        raise InvalidResetToken()
    db.session.execute(
        sa.update(User)
        .where(User.id == user_id)
        .values(password_hash=hash_password(new_password, settings.bcrypt_rounds, settings.password_pepper))
    )
    db.session.execute(
        sa.update(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.session.commit()
    logger.info("password reset; all sessions ended", extra={"user_id": user_id})


def _spend_tokens(
    model: type[PasswordResetToken] | type[EmailVerificationToken], token: str, now
) -> str | None:
    """Spend a live token and every other unused one of its user; that user's id, or None.

    One conditional UPDATE spends the token, so of two concurrent confirms only one wins; the
    user's other links die with it (an older mailed link must not act again)."""
    user_id = db.session.scalar(
        sa.update(model)
        .where(model.token_hash == _hash_token(token), model.used_at.is_(None), model.expires_at > now)
        .values(used_at=now)
        .returning(model.user_id)
    )
    if user_id is not None:
        db.session.execute(
            sa.update(model).where(model.user_id == user_id, model.used_at.is_(None)).values(used_at=now)
        )
    return user_id


# --- email confirmation -------------------------------------------------------------------------


def is_email_verified(user_id: str) -> bool:
    """Has this user confirmed their email? (False for an unknown user.)"""
    verified_at = db.session.scalar(sa.select(User.email_verified_at).where(User.id == user_id))
    return verified_at is not None


def request_email_verification(settings: Settings, user_id: str) -> None:
    """Mail a fresh single-use confirmation link, unless the email is confirmed already."""
    user = db.session.get(User, user_id)
    if user is None or user.email_verified_at is not None:
        return
    _mail_verification_link(settings, user)


def confirm_email_verification(token: str) -> User:
    """Spend the token (once) and mark its user's email confirmed; 400 invalid_token otherwise."""
    now = utcnow()
    user_id = _spend_tokens(EmailVerificationToken, token, now)
    if user_id is None:
        db.session.rollback()
        raise InvalidVerificationToken()
    db.session.execute(
        sa.update(User)
        .where(User.id == user_id, User.email_verified_at.is_(None))
        .values(email_verified_at=now)
    )
    db.session.commit()
    logger.info("email confirmed", extra={"user_id": user_id})
    return db.session.get(User, user_id)


def _mail_verification_link(settings: Settings, user: User) -> None:
    """Store a hashed token and mail its link. A mail that cannot be sent now is logged, not raised:
    the account exists, and the web page can ask for another link."""
    token = secrets.token_urlsafe(32)
    ttl_hours = settings.email_verification_ttl_hours
    db.session.add(
        EmailVerificationToken(
            user_id=user.id, token_hash=_hash_token(token), expires_at=utcnow() + timedelta(hours=ttl_hours)
        )
    )
    db.session.commit()
    link = f"{settings.app_base_url}/verify-email?token={quote(token)}"
    try:
        send_mail(
            settings,
            to=user.email,
            subject="Confirm your KeyLM email",
            body=(
                "Welcome to KeyLM. To use KeyLM Free, confirm that this address is yours by opening "
                f"this link within {ttl_hours} hours:\n\n{link}\n\n"
                "If you did not create a KeyLM account, ignore this mail.\n"
            ),
        )
    except Exception as exc:
        logger.warning(
            "could not send the confirmation mail: %s", type(exc).__name__, extra={"user_id": user.id}
        )
        return
    logger.info("email confirmation mailed", extra={"user_id": user.id})
