-- Quotas per tenant (its plan) and per API key, usage counters per day, and per-server audit
-- payload capture (docs/adr/0010-audit-quotas-killswitch.md). NULL limits are unlimited.

CREATE TABLE tenant_quotas (
    tenant_id              uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    requests_per_minute    integer CHECK (requests_per_minute > 0),
    tool_calls_per_month   bigint CHECK (tool_calls_per_month > 0),
    max_sessions           integer CHECK (max_sessions > 0),
    wasm_cpu_ms_per_month  bigint CHECK (wasm_cpu_ms_per_month > 0),
    max_containers         integer CHECK (max_containers >= 0),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_key_quotas (
    tenant_id              uuid NOT NULL,
    key_id                 uuid NOT NULL,
    requests_per_minute    integer CHECK (requests_per_minute > 0),
    tool_calls_per_month   bigint CHECK (tool_calls_per_month > 0),
    max_sessions           integer CHECK (max_sessions > 0),
    wasm_cpu_ms_per_month  bigint CHECK (wasm_cpu_ms_per_month > 0),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key_id),
    FOREIGN KEY (tenant_id, key_id) REFERENCES api_keys (tenant_id, id) ON DELETE CASCADE
);

-- Data-plane nodes add their deltas here in batches. key_id is the nil UUID for calls
-- without an API key. No foreign key on servers: usage outlives a deleted server.
CREATE TABLE usage_daily (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day         date NOT NULL,
    server_id   uuid NOT NULL,
    key_id      uuid NOT NULL,
    requests    bigint NOT NULL DEFAULT 0,
    tool_calls  bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    cpu_us      bigint NOT NULL DEFAULT 0,
    bytes_in    bigint NOT NULL DEFAULT 0,
    bytes_out   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, server_id, key_id)
);

CREATE TABLE server_audit_settings (
    tenant_id         uuid NOT NULL,
    server_id         uuid NOT NULL,
    capture_payloads  boolean NOT NULL DEFAULT false,
    redact            text[] NOT NULL DEFAULT '{}',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, server_id),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id) ON DELETE CASCADE
);
