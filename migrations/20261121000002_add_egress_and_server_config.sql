-- Outbound HTTP allowlist per server version (WASM guests through wasi:http), and per-server
-- configuration and secrets handed to guests through the berth:mcp/config interface.

ALTER TABLE server_versions ADD COLUMN egress text[] NOT NULL DEFAULT '{}';

CREATE TABLE server_config (
    tenant_id   uuid NOT NULL,
    server_id   uuid NOT NULL,
    key         text NOT NULL CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$'),
    value       text NOT NULL CHECK (length(value) <= 65536),
    secret      boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, server_id, key),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id) ON DELETE CASCADE
);
