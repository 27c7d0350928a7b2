-- The foreign key from audit_events to tenants looked the tenant up and locked its row for
-- every event inserted: about 3 µs of PostgreSQL's CPU per audited call, a quarter of what the
-- database spent on one (benchmark B1, WASM echo, 32 sessions: 12.1-12.9 µs before, 9.0-10.2
-- after). It proved nothing the writer does not already know: a batch is inserted only for
-- tenants whose chain head it holds locked (FOR UPDATE), and a chain head references its
-- tenant. What the key still did, deleting a tenant's events with the tenant, is done here by
-- a trigger on tenants.

ALTER TABLE audit_events DROP CONSTRAINT audit_events_tenant_id_fkey;

CREATE FUNCTION audit_events_delete_with_tenant() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The chain head first: this waits for a writer holding it, so the events that writer
    -- commits are seen (each statement takes a new snapshot) and deleted by the next statement.
    DELETE FROM audit_chain_heads WHERE tenant_id = OLD.id;
    DELETE FROM audit_events WHERE tenant_id = OLD.id;
    RETURN OLD;
END;
$$;

CREATE TRIGGER audit_events_delete_with_tenant
    AFTER DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION audit_events_delete_with_tenant();
