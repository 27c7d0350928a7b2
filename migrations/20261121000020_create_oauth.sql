-- OAuth 2.1 per tenant: signing keys, clients, browser sessions at the login page,
-- authorization codes, grants (token families) with their refresh tokens, and the external
-- OpenID Connect issuer a tenant may trust instead.
-- Every table is tenant-owned: tenant_id NOT NULL leads each primary key.
-- Secrets (codes, refresh tokens, client secrets, session ids) are stored as SHA-256 only.

-- Ed25519 keys that sign the tenant's access tokens. One key is active (retired_at IS NULL);
-- a rotated key stays published in the JWKS until the tokens it signed have expired.
CREATE TABLE oauth_signing_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kid          text NOT NULL CHECK (length(kid) BETWEEN 8 AND 64),
    algorithm    text NOT NULL CHECK (algorithm = 'EdDSA'),
    -- PKCS#8 DER. Stored like server secrets (see docs/adr/0009-oauth.md).
    private_der  bytea NOT NULL,
    public_jwk   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    PRIMARY KEY (tenant_id, kid)
);
CREATE UNIQUE INDEX oauth_signing_keys_one_active ON oauth_signing_keys (tenant_id) WHERE retired_at IS NULL;

-- Clients: pre-registered through the admin API or registered dynamically (RFC 7591).
-- Client ID Metadata Document clients (an https URL as client_id) are not stored.
CREATE TABLE oauth_clients (
    tenant_id                   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id                   text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 100),
    name                        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    redirect_uris               text[] NOT NULL CHECK (cardinality(redirect_uris) BETWEEN 1 AND 20),
    token_endpoint_auth_method  text NOT NULL
        CHECK (token_endpoint_auth_method IN ('none', 'client_secret_post', 'client_secret_basic')),
    secret_hash                 bytea,
    grant_types                 text[] NOT NULL,
    registered_by               text NOT NULL CHECK (registered_by IN ('admin', 'dynamic')),
    created_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, client_id),
    CHECK ((token_endpoint_auth_method = 'none') = (secret_hash IS NULL))
);

-- A member signed in at the tenant's login page (the browser holds the session id in a cookie).
CREATE TABLE oauth_sessions (
    tenant_id   uuid NOT NULL,
    id_hash     bytea NOT NULL,
    member_id   uuid NOT NULL,
    -- The consent form's CSRF token, bound to this session.
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id_hash),
    FOREIGN KEY (tenant_id, member_id) REFERENCES members (tenant_id, id) ON DELETE CASCADE
);

-- A grant: one member's consent for one client to reach one server. Access and refresh tokens
-- belong to a grant; revoking it (revocation endpoint, refresh-token reuse, code replay,
-- removing the member or the client) revokes them all.
CREATE TABLE oauth_grants (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    client_id   text NOT NULL,
    member_id   uuid NOT NULL,
    resource    text NOT NULL,
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES members (tenant_id, id) ON DELETE CASCADE
);

-- Authorization codes: single use, short-lived, bound to client, redirect URI, PKCE challenge
-- and grant. A second use revokes the grant (RFC 9700 §4.5).
CREATE TABLE oauth_codes (
    tenant_id       uuid NOT NULL,
    code_hash       bytea NOT NULL,
    grant_id        uuid NOT NULL,
    redirect_uri    text NOT NULL,
    code_challenge  text NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    PRIMARY KEY (tenant_id, code_hash),
    FOREIGN KEY (tenant_id, grant_id) REFERENCES oauth_grants (tenant_id, id) ON DELETE CASCADE
);

-- Refresh tokens rotate on every use; presenting a used one again revokes its grant.
CREATE TABLE oauth_refresh_tokens (
    tenant_id   uuid NOT NULL,
    token_hash  bytea NOT NULL,
    grant_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, grant_id) REFERENCES oauth_grants (tenant_id, id) ON DELETE CASCADE
);

-- An external OpenID Connect issuer whose access tokens the tenant's servers accept.
CREATE TABLE identity_providers (
    tenant_id    uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    issuer       text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 2000),
    -- When set, tokens must carry this audience; when null, the server's MCP URL.
    audience     text CHECK (length(audience) BETWEEN 1 AND 2000),
    -- When null, taken from the issuer's OpenID discovery document.
    jwks_uri     text CHECK (length(jwks_uri) BETWEEN 1 AND 2000),
    -- The claim holding the member's email address.
    email_claim  text NOT NULL DEFAULT 'email' CHECK (length(email_claim) BETWEEN 1 AND 100),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
