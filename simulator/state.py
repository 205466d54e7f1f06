"""Runtime state of the simulator: revoked keys, downed providers, and a log of recent requests."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

_LOG_SIZE = 1000


def key_digest(api_key: str | None) -> str | None:
    """A short SHA-256 prefix that identifies a key without revealing it."""
    if not api_key:
        return None
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass
class RequestRecord:
    provider: str
    method: str
    path: str
    key_sha256: str | None
    model: str | None = None
    status: int | None = None
    at: float = field(default_factory=time.time)
    stream_id: str | None = None
    tokens_sent: int = 0
    state: str | None = None  # streams: streaming -> completed | client_closed | failed
    ended_at: float | None = None

    def finish(self, state: str) -> None:
        """Record how a stream ended (the first outcome wins)."""
        if self.state == "streaming":
            self.state, self.ended_at = state, time.time()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return asdict(self)


class SimState:
    """Everything `/_sim/` can see or change; one instance per app (one gevent worker)."""

    def __init__(self) -> None:
        self._stream_ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """Forget revocations, outages, the request log and the counters."""
        self.revoked: set[str] = set()
        self.down: set[str] = set()
        self.records: deque[RequestRecord] = deque(maxlen=_LOG_SIZE)
        self.streams: dict[str, RequestRecord] = {}
        self.calls: Counter[tuple[str, str]] = Counter()

    def revoke(self, api_key: str) -> None:
        """Make a key answer as invalid from now on (only its digest is kept)."""
        self.revoked.add(hashlib.sha256(api_key.encode()).hexdigest())

    def is_revoked(self, api_key: str) -> bool:
        """True after /_sim/keys/revoke named this key."""
        return hashlib.sha256(api_key.encode()).hexdigest() in self.revoked

    def record(self, provider: str, method: str, path: str, api_key: str | None, kind: str) -> RequestRecord:
        """Log one incoming request and count it under kind ("chat" or "models")."""
        entry = RequestRecord(provider, method, path, key_digest(api_key))
        self.records.append(entry)
        self.calls[(kind, provider)] += 1
        return entry

    def start_stream(self, entry: RequestRecord) -> str:
        """Give a request a stream id and mark it as streaming."""
        entry.stream_id = f"sim-{next(self._stream_ids)}-{secrets.token_hex(4)}"
        entry.state = "streaming"
        self.streams[entry.stream_id] = entry
        if len(self.streams) > _LOG_SIZE:
            oldest = next(iter(self.streams))
            del self.streams[oldest]
        return entry.stream_id

    def stats(self) -> dict[str, Any]:
        """Counters: chat and model-list calls per provider, streams by state."""
        by_state = Counter(s.state for s in self.streams.values())
        return {
            "chat_calls": {p: n for (k, p), n in self.calls.items() if k == "chat"},
            "model_list_calls": {p: n for (k, p), n in self.calls.items() if k == "models"},
            "open_streams": by_state.get("streaming", 0),
            "streams": dict(by_state),
        }
