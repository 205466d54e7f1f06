"""`python -m keys_service.rotate`: re-encrypt every stored key under the current master key.

Set APP_ENCRYPTION_KEY to the new key and APP_ENCRYPTION_KEY_PREVIOUS to the old one, run this,
then (once it reports no failures) unset APP_ENCRYPTION_KEY_PREVIOUS. Safe to run again.
"""

from __future__ import annotations

import sys

from keys_service.app import create_app
from keys_service.services import RotationReport, rotate_master_key
from shared.config import ConfigError, load_settings

__all__ = ["RotationReport", "main", "rotate_master_key"]


def main() -> int:
    """Rotate and print the counts; exit 1 if any key could not be decrypted, 2 on bad config."""
    try:
        settings = load_settings(service="keys")  # runs where keys runs, with its secrets only
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    app = create_app(settings)
    with app.app_context():
        report = rotate_master_key(settings)
    print(
        f"keys: {report.total}, re-encrypted: {report.reencrypted}, "
        f"already current: {report.already_current}, failed: {report.failed}",
        flush=True,
    )
    if report.failed:
        print(
            "Some keys could not be decrypted with APP_ENCRYPTION_KEY or APP_ENCRYPTION_KEY_PREVIOUS; "
            "keep APP_ENCRYPTION_KEY_PREVIOUS set until they are dealt with.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
