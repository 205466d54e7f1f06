"""`python -m runner openapi`: build the OpenAPI document from every package's description and
write it to docs/openapi.json, which the gateway serves (`--check`: fail when the file is stale).

The runner is the one place allowed to import every service: no service imports another.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from auth_service.openapi import DOC as AUTH_DOC
from chat_service.openapi import DOC as CHAT_DOC
from gateway.openapi import DOC as GATEWAY_DOC
from gateway.openapi import INFO, SECURITY
from keys_service.openapi import DOC as KEYS_DOC
from quota_service.openapi import DOC as QUOTA_DOC
from shared.config import REPO_ROOT
from shared.openapi import build_document

DOCUMENT_PATH = REPO_ROOT / "docs" / "openapi.json"
# The order of the document's paths and tags.
SERVICE_DOCS = [GATEWAY_DOC, AUTH_DOC, KEYS_DOC, CHAT_DOC, QUOTA_DOC]


def build_spec() -> dict[str, Any]:
    """The whole document, as a dict (deterministic: the same code gives the same document)."""
    return build_document(INFO, SECURITY, SERVICE_DOCS)


def render_spec() -> str:
    """The document as docs/openapi.json holds it."""
    return json.dumps(build_spec(), indent=2, ensure_ascii=False) + "\n"


def write_openapi(check: bool = False) -> int:
    """Write docs/openapi.json; with `check`, only say whether it is up to date (exit 1 if not)."""
    text = render_spec()
    current = DOCUMENT_PATH.read_text(encoding="utf-8") if DOCUMENT_PATH.exists() else None
    if check:
        if current != text:
            name = DOCUMENT_PATH.relative_to(REPO_ROOT)
            print(f"{name} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        DOCUMENT_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH.relative_to(REPO_ROOT)}")
    return 0
