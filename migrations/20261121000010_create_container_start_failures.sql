-- Container starts that failed, with the container's last output, so a tenant can see why its
-- server does not start (GET .../versions/{number}/logs). Written by the data plane, at most 20
-- kept per version (older rows are deleted on insert).

CREATE TABLE container_start_failures (
    tenant_id   uuid NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    version_id  uuid NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    container   text NOT NULL,
    image       text NOT NULL,
    reason      text NOT NULL,
    logs        text NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, version_id) REFERENCES server_versions (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX container_start_failures_by_version ON container_start_failures (tenant_id, version_id, at DESC);
