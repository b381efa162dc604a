"""Hot reload of the published ``pm_config`` into a ``Runtime``.

A background thread with its own psycopg connection LISTENs on ``leverloop_pm_config`` and
re-reads the current version when a notification arrives, after every (re)connect and on a
poll timer: NOTIFY makes changes fast, the reads make them certain (a notification sent while
the connection was down is never needed). A read only fetches the payload when the current
pointer names a version newer than the active one; the payload is validated with ``PmConfig``
and compiled before the swap (``VersionLoader``: entries unchanged since the active version are
neither validated nor compiled again, which keeps large configs quick to swap). A version that fails validation is rejected (counted, logged,
never retried: versions are immutable) and the active one stays. The runtime never moves to
a lower version.

Every version swapped in is also written to a last-known-good file (temp file + rename, so a
reader never sees half a file) under ``$LEVERLOOP_HOME/runtime/``; ``start()`` loads it
before connecting, so a PM that starts while the database is down runs on the last config.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from leverloop.domain.pm_config import PmConfig, StrengthOverride, TuningOverride
from leverloop.runtime.core import Runtime
from leverloop.runtime.index import (
    SECTIONS,
    CompiledOverride,
    OverrideIndex,
    build_index,
    compile_entry,
)

log = logging.getLogger("leverloop.runtime.watcher")

CHANNEL = "leverloop_pm_config"  # leverloop.store.configs.NOTIFY_CHANNEL
LAST_GOOD_FILE = "pm_config.last_good.json"
_WAKE_SECONDS = 0.2  # how often the thread looks at its stop flag while waiting


def runtime_dir(home: Path | str | None = None) -> Path:
    """``$LEVERLOOP_HOME/runtime`` (``./.leverloop/runtime`` by default)."""
    base = Path(home) if home is not None else Path(os.environ.get("LEVERLOOP_HOME", ".leverloop"))
    return base.expanduser().absolute() / "runtime"


def libpq_dsn(url: str) -> str:
    """Accept SQLAlchemy-style URLs too: ``postgresql+psycopg://`` -> ``postgresql://``."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        return f"{scheme.split('+', 1)[0]}://{rest}"
    return url


def write_last_known_good(path: Path, version: int, content_hash: str | None, payload: str) -> None:
    """Atomically replace ``path``: write a temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"version": version, "content_hash": content_hash, "saved_at": time.time()})
    text = f'{header[:-1]}, "payload": {payload}}}'
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_last_known_good(path: Path) -> tuple[int, str | None, PmConfig]:
    """(version, content_hash, config) from a last-known-good file; ValueError if unusable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        version = int(document["version"])
        config = PmConfig.model_validate(document["payload"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable last-known-good config ({exc})") from exc
    return version, document.get("content_hash"), config


# A version's payload, split by PostgreSQL: the override entries as JSON text each (jsonb's
# text form is canonical, so an unchanged entry has the same text in every version), and the
# rest of the payload. A section that is present but not an array stays in the rest, where
# validation rejects it.
_ENTRIES_SQL = """
    select s.section, e.value::text
      from leverloop.pm_config_versions v
     cross join (values (1, 'pattern_strength_overrides'), (2, 'pattern_overrides')) s (k, section)
     cross join lateral jsonb_array_elements(
           case when jsonb_typeof(v.payload -> s.section) = 'array' then v.payload -> s.section
                else '[]'::jsonb end) with ordinality e (value, ord)
     where v.version = %s
     order by s.k, e.ord
"""
_REST_SQL = """
    select content_hash,
           case when jsonb_typeof(payload) <> 'object' then payload
                else (payload - 'pattern_strength_overrides' - 'pattern_overrides')
                     || case when jsonb_typeof(payload -> 'pattern_strength_overrides') <> 'array'
                             then jsonb_build_object('pattern_strength_overrides',
                                                     payload -> 'pattern_strength_overrides')
                             else '{}'::jsonb end
                     || case when jsonb_typeof(payload -> 'pattern_overrides') <> 'array'
                             then jsonb_build_object('pattern_overrides', payload -> 'pattern_overrides')
                             else '{}'::jsonb end
           end::text
      from leverloop.pm_config_versions where version = %s
"""
_ENTRY_MODELS = {
    "pattern_strength_overrides": StrengthOverride,
    "pattern_overrides": TuningOverride,
}
Cached = tuple[Any, CompiledOverride | None]  # (validated entry, compiled override)


@dataclass
class Fetched:
    version: int
    content_hash: str | None
    rest: str
    entries: list[tuple[str, str]]  # (section, entry JSON text)


@dataclass
class Loaded:
    fetched: Fetched
    index: OverrideIndex
    entries: dict[tuple[str, str], Cached]
    rest: dict[str, Any]

    def payload_text(self) -> str:
        """The version's payload as JSON text, rebuilt from its parts (for the last-good file)."""
        parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in self.rest.items()]
        for section in _ENTRY_MODELS:
            texts = [text for s, text in self.fetched.entries if s == section]
            parts.append(f'"{section}": [{", ".join(texts)}]')
        return "{" + ", ".join(parts) + "}"


class VersionLoader:
    """Validates and compiles a version, reusing the entries it already holds from the last one.

    Every entry is validated with its ``PmConfig`` entry model and the whole with ``PmConfig``
    (flags, unique keys) exactly as ``PmConfig.model_validate_json`` of the payload would; an
    entry whose JSON text is unchanged since the active version is not validated or compiled
    again, so a new version with a few changed levers among 10,000 swaps in quickly.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Cached] = {}

    def fetch(self, conn: psycopg.Connection, version: int) -> Fetched | None:
        head = conn.execute(_REST_SQL, (version,)).fetchone()
        if head is None:
            return None
        entries = [(str(s), str(t)) for s, t in conn.execute(_ENTRIES_SQL, (version,))]
        return Fetched(version, head[0], head[1], entries)

    def load(self, fetched: Fetched) -> Loaded:
        rest = json.loads(fetched.rest)
        if not isinstance(rest, dict):
            raise ValueError(f"the payload is a JSON {type(rest).__name__}, not an object")
        sections: dict[str, list[Any]] = {section: [] for section in _ENTRY_MODELS}
        entries: dict[tuple[str, str], Cached] = {}
        compiled: list[CompiledOverride] = []
        for key in fetched.entries:
            cached = entries.get(key) or self._entries.get(key)
            if cached is None:
                section, text = key
                try:
                    model = _ENTRY_MODELS[section].model_validate_json(text)
                except ValueError as exc:
                    raise ValueError(f"{section}[{len(sections[section])}]: {exc}") from None
                cached = (model, compile_entry(SECTIONS[section], model))
            entries[key] = cached
            sections[key[0]].append(cached[0])
            if cached[1] is not None:
                compiled.append(cached[1])
        # the rest of the payload (schema version, flags, no unknown keys) and the unique keys:
        # what PmConfig checks beyond its entries, without validating every entry again
        head = PmConfig.model_validate(rest)
        for models in sections.values():
            PmConfig._unique_keys(models)
        index = build_index(
            compiled,
            version=fetched.version,
            content_hash=fetched.content_hash,
            enabled=head.learning_overrides_enabled,
            regimes=head.learning_overrides_enabled_regimes,
        )
        return Loaded(fetched, index, entries, rest)

    def keep(self, loaded: Loaded) -> None:
        """Remember the entries of the version now active (and only those)."""
        self._entries = loaded.entries


class ConfigWatcher:
    """Keeps ``runtime`` on the newest valid published version."""

    def __init__(
        self,
        runtime: Runtime,
        dsn: str,
        *,
        home: Path | str | None = None,
        poll_interval: float = 5.0,
        connect_timeout: float = 5.0,
        max_backoff: float = 5.0,
        application_name: str = "leverloop-runtime",
    ) -> None:
        self.runtime = runtime
        self.dsn = libpq_dsn(dsn)
        self.last_good_path = runtime_dir(home) / LAST_GOOD_FILE
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self.application_name = application_name
        self.connected = False
        self.connects = 0
        self.connection_failures = 0
        self.notifications = 0
        self.rejected: dict[int, str] = {}  # version -> why
        self.last_error: str | None = None
        self.last_good_loaded: int | None = None
        self._loader = VersionLoader()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ConfigWatcher:
        """Load the last-known-good file, then watch the database from a daemon thread."""
        self.load_last_known_good()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="leverloop-config-watcher", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the first read from the database succeeded or the first connect failed."""
        return self._ready.wait(timeout)

    def stats(self) -> dict[str, Any]:
        return {
            "version": self.runtime.version,
            "connected": self.connected,
            "connects": self.connects,
            "connection_failures": self.connection_failures,
            "notifications": self.notifications,
            "rejected": dict(self.rejected),
            "last_error": self.last_error,
            "last_good_loaded": self.last_good_loaded,
        }

    def load_last_known_good(self) -> int | None:
        if not self.last_good_path.is_file():
            return None
        try:
            version, content_hash, config = read_last_known_good(self.last_good_path)
        except ValueError as exc:
            self.last_error = str(exc)
            log.warning("ignoring the last-known-good file: %s", exc)
            return None
        if self.runtime.install(config, version, content_hash):
            self.last_good_loaded = version
            log.info("running on last-known-good pm_config v%s until the database answers", version)
        return version

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=max(1, round(self.connect_timeout)),
                    application_name=self.application_name,
                ) as conn:
                    conn.execute(f"listen {CHANNEL}")
                    self.connected, self.connects, backoff = True, self.connects + 1, 0.05
                    self._refresh(conn)
                    self._ready.set()
                    self._listen(conn)
            except (psycopg.Error, OSError) as exc:
                self._failed(exc)
            except Exception as exc:  # never let the thread die: log, back off, retry
                log.exception("config watcher error")
                self._failed(exc)
            finally:
                self.connected = False
            if not self._stop.is_set():
                self._stop.wait(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    def _failed(self, exc: Exception) -> None:
        self.connection_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}".strip()
        self._ready.set()
        if self.connection_failures == 1 or self.connection_failures % 100 == 0:
            log.warning("config watcher lost the database (%s); retrying", self.last_error)

    def _listen(self, conn: psycopg.Connection) -> None:
        next_poll = time.monotonic() + self.poll_interval
        while not self._stop.is_set():
            wait = max(0.0, min(_WAKE_SECONDS, next_poll - time.monotonic()))
            notified = sum(1 for _ in conn.notifies(timeout=wait, stop_after=1))
            if notified:
                self.notifications += notified
            elif time.monotonic() < next_poll:
                continue
            self._refresh(conn)
            next_poll = time.monotonic() + self.poll_interval

    def _refresh(self, conn: psycopg.Connection) -> None:
        """Swap in the current version if it is newer than the active one and valid."""
        row = conn.execute("select version from leverloop.pm_config_current").fetchone()
        if row is None:
            return
        version = int(row[0])
        active = self.runtime.version
        if (active is not None and version <= active) or version in self.rejected:
            return
        fetched = self._loader.fetch(conn, version)
        if fetched is None:
            return
        try:
            loaded = self._loader.load(fetched)
            installed = self.runtime.install_index(loaded.index)
        except Exception as exc:
            self._reject(version, exc)
            return
        if installed:
            self._loader.keep(loaded)
            try:
                write_last_known_good(
                    self.last_good_path, version, fetched.content_hash, loaded.payload_text()
                )
            except OSError as exc:
                self.last_error = f"cannot write {self.last_good_path}: {exc}"
                log.warning(self.last_error)

    def _reject(self, version: int, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}".strip()
        self.rejected[version] = reason[:2000]
        self.last_error = f"pm_config v{version} rejected: {reason}"
        log.error(
            "pm_config v%s rejected, staying on v%s: %s", version, self.runtime.version, reason
        )
