"""The database schema, as numbered migrations. ``PRAGMA user_version`` records the last one
applied, so a fresh file and an older file both open correctly."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE traces (
            id TEXT PRIMARY KEY,
            ts REAL NOT NULL,
            route TEXT NOT NULL,
            project TEXT NOT NULL,
            key_id TEXT,
            path TEXT NOT NULL,
            model TEXT NOT NULL,
            served_model TEXT,
            provider TEXT,
            status INTEGER NOT NULL,
            error TEXT,
            stream INTEGER NOT NULL,
            cache TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_pico INTEGER,            -- NULL: cost unknown (unpriced model)
            priced INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            ttft_ms REAL,
            overhead_ms REAL,
            attempts TEXT NOT NULL,       -- JSON list
            notes TEXT NOT NULL,          -- JSON object: module findings
            request_body TEXT,
            response_body TEXT
        );
        CREATE INDEX traces_route ON traces(route, id);
        CREATE INDEX traces_model ON traces(model, id);
        CREATE INDEX traces_project ON traces(project, id);

        CREATE TABLE spend_daily (
            day TEXT NOT NULL,
            project TEXT NOT NULL,
            key_id TEXT NOT NULL,
            route TEXT NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            requests INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            cost_pico INTEGER NOT NULL,   -- priced requests only
            unpriced INTEGER NOT NULL,    -- requests whose cost is unknown
            PRIMARY KEY (day, project, key_id, route, model, provider)
        );

        CREATE TABLE ledger (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            type TEXT NOT NULL,
            actor TEXT NOT NULL,
            resource TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,          -- public identifier, e.g. key_3f9a…
            hash TEXT NOT NULL UNIQUE,    -- SHA-256 of the key; the key itself is never stored
            prefix TEXT NOT NULL,         -- first characters, to recognise a key in lists
            project TEXT NOT NULL,
            name TEXT NOT NULL,
            routes TEXT NOT NULL,         -- JSON list; empty: every route
            models TEXT NOT NULL,         -- JSON list of globs; empty: every model
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            created_by TEXT NOT NULL
        );

        CREATE TABLE module_overrides (
            module TEXT NOT NULL,
            route TEXT NOT NULL,          -- '' applies to every route
            enabled INTEGER,              -- NULL: keep the compiled default
            params TEXT,                  -- JSON object of parameter overrides, or NULL
            updated_at REAL NOT NULL,
            actor TEXT NOT NULL,
            PRIMARY KEY (module, route)
        );

        CREATE TABLE cache (
            key TEXT PRIMARY KEY,         -- SHA-256 of the canonical request, scoped by project
            project TEXT NOT NULL,
            route TEXT NOT NULL,
            model TEXT NOT NULL,
            stream INTEGER NOT NULL,
            status INTEGER NOT NULL,
            content_type TEXT NOT NULL,
            body BLOB NOT NULL,           -- the answer as sent: JSON, or the SSE bytes of a stream
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_pico INTEGER,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            last_hit REAL NOT NULL,
            hits INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX cache_last_hit ON cache(last_hit);

        -- Change counters other processes poll to pick up keys and toggles within a second.
        CREATE TABLE versions (
            name TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        );
        INSERT INTO versions VALUES ('api_keys', 0), ('module_overrides', 0);
        """,
    ),
    (
        3,
        """
        -- The cache's counters: they outlive the entries (DELETE /api/cache, eviction, expiry)
        -- and restarts. Each process adds its own deltas, so processes sharing the file add up.
        CREATE TABLE cache_stats (
            project TEXT NOT NULL,
            route TEXT NOT NULL,
            hits INTEGER NOT NULL DEFAULT 0,
            misses INTEGER NOT NULL DEFAULT 0,
            stored INTEGER NOT NULL DEFAULT 0,        -- answers written to the cache
            saved_pico INTEGER NOT NULL DEFAULT 0,    -- cost of the original requests, per hit
            saved_unknown INTEGER NOT NULL DEFAULT 0, -- hits whose original cost is unknown
            PRIMARY KEY (project, route)
        );
        CREATE INDEX cache_route_last_hit ON cache(route, last_hit);
        CREATE INDEX cache_expires ON cache(expires_at);
        """,
    ),
    (
        4,
        """
        -- One name for one concept: the runtime toggles (PUT /api/proxy/modules/{name}) were
        -- stored as `module_overrides`. The rows, their key and their change counter move over.
        ALTER TABLE module_overrides RENAME TO toggles;
        UPDATE versions SET name = 'toggles' WHERE name = 'module_overrides';
        """,
    ),
)

LATEST = MIGRATIONS[-1][0]
