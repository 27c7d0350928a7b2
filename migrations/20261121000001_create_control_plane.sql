-- The control plane's first schema: tenants, members, servers, immutable versions,
-- content-addressed WASM components and API keys.
-- Every tenant-owned table carries tenant_id NOT NULL, leading its primary key or indexes.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    display_name   text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'publisher', 'auditor')),
    password_hash  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);

CREATE TABLE servers (
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                 uuid NOT NULL,
    slug               text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '',
    kind               text NOT NULL CHECK (kind IN ('wasm', 'container', 'remote')),
    enabled            boolean NOT NULL DEFAULT true,
    public             boolean NOT NULL DEFAULT false,
    disabled_tools     text[] NOT NULL DEFAULT '{}',
    active_version_id  uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, slug)
);

-- Component bytes, addressed by SHA-256 within a tenant.
-- Deduplication never crosses tenants, so an upload cannot reveal another tenant's component.
CREATE TABLE wasm_components (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint NOT NULL CHECK (size > 0),
    bytes       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256)
);

CREATE TABLE server_versions (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    server_id    uuid NOT NULL,
    number       integer NOT NULL CHECK (number > 0),
    kind         text NOT NULL CHECK (kind IN ('wasm', 'container', 'remote')),
    -- wasm
    wasm_sha256  text,
    -- container
    image        text,
    transport    text CHECK (transport IN ('stdio', 'http')),
    command      text[],
    args         text[] NOT NULL DEFAULT '{}',
    env          jsonb NOT NULL DEFAULT '{}',
    port         integer CHECK (port BETWEEN 1 AND 65535),
    path         text,
    limits       jsonb,
    -- remote
    url          text,
    headers      jsonb NOT NULL DEFAULT '{}',
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, server_id, number),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, wasm_sha256) REFERENCES wasm_components (tenant_id, sha256),
    CHECK (
        (kind = 'wasm' AND wasm_sha256 IS NOT NULL AND image IS NULL AND url IS NULL)
        OR (kind = 'container' AND image IS NOT NULL AND transport IS NOT NULL AND wasm_sha256 IS NULL AND url IS NULL)
        OR (kind = 'remote' AND url IS NOT NULL AND wasm_sha256 IS NULL AND image IS NULL)
    )
);

ALTER TABLE servers
    ADD FOREIGN KEY (tenant_id, active_version_id) REFERENCES server_versions (tenant_id, id);

-- Versions are immutable: only the kill-switch flag may change.
CREATE FUNCTION server_versions_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) - 'enabled') IS DISTINCT FROM (to_jsonb(OLD) - 'enabled') THEN
        RAISE EXCEPTION 'server versions are immutable' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER server_versions_immutable
    BEFORE UPDATE ON server_versions
    FOR EACH ROW EXECUTE FUNCTION server_versions_immutable();

CREATE TABLE api_keys (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The public lookup part of the key; unique across tenants so a key resolves to one row.
    prefix        text NOT NULL UNIQUE,
    -- SHA-256 of the whole key. Keys carry 190 bits of entropy, so a fast hash is enough.
    secret_hash   bytea NOT NULL,
    scopes        text[] NOT NULL,
    server_ids    uuid[],
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
