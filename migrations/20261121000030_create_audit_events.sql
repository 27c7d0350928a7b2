-- The audit trail: one hash chain per tenant (docs/adr/0010-audit-quotas-killswitch.md).
-- Each event's hash is SHA-256(prev_hash || canonical JSON of the event and its seq); the
-- writer seals events into their chain at insert time, holding the chain head's row lock.

CREATE TABLE audit_chain_heads (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    seq        bigint NOT NULL CHECK (seq >= 0),
    hash       text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);

CREATE TABLE audit_events (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq          bigint NOT NULL CHECK (seq > 0),
    id           uuid NOT NULL,
    at           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('admin', 'auth', 'session', 'call')),
    method       text NOT NULL,
    name         text,
    principal    text NOT NULL,
    client       text,
    server       text,
    version      integer,
    args_sha256  text,
    payload      text,
    outcome      text NOT NULL,
    error_code   bigint,
    latency_us   bigint,
    cpu_us       bigint,
    bytes_in     bigint,
    bytes_out    bigint,
    detail       text,
    node         text NOT NULL,
    prev_hash    text NOT NULL,
    hash         text NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    -- Replays are idempotent by event id.
    UNIQUE (tenant_id, id)
);

CREATE INDEX audit_events_by_time ON audit_events (tenant_id, at);

-- Append-only: rows are never updated, and deleted only with their tenant. The hash chain, not
-- this trigger, is what proves nothing changed: a superuser can bypass triggers.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR EXISTS (SELECT 1 FROM tenants WHERE id = OLD.tenant_id) THEN
        RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
