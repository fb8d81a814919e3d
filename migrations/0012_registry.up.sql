-- The service registry (registry/, served as a Consul HTTP API subset by
-- registry/consulapi, through storage/postgres/registrystore).
--
-- registry_index is the registry-wide change counter that Consul's
-- blocking queries wait on (X-Consul-Index). Every transaction that
-- changes what the API shows first locks this row (SELECT … FOR UPDATE),
-- so writers serialise in one order and never deadlock; when it changed
-- something it raises idx by one and sends NOTIFY vigil_registry with the
-- new index as payload. NOTIFY is delivered at commit, so a replica that
-- wakes on it reads the change; a replica that lost its LISTEN session
-- re-reads idx instead.
CREATE TABLE registry_index (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    idx bigint  NOT NULL
);
INSERT INTO registry_index (one, idx) VALUES (true, 1);

-- Registered service instances: one node (the Vigil cluster), many
-- services. create_index and modify_index are values of registry_index.
CREATE TABLE registry_services (
    id           text        PRIMARY KEY,
    name         text        NOT NULL,
    tags         text[]      NOT NULL,
    address      text        NOT NULL,
    port         integer     NOT NULL,
    meta         jsonb       NOT NULL,
    create_index bigint      NOT NULL,
    modify_index bigint      NOT NULL,
    registered   timestamptz NOT NULL
);

CREATE INDEX registry_services_name ON registry_services (name);

-- Checks of the services, with their current status. kind is 'http',
-- 'tcp', 'grpc', 'ttl' or 'maintenance'; definition holds the rest of the
-- check's definition (target, method, headers, interval, timeout) as JSON.
-- status_since is when status last changed (DeregisterCriticalServiceAfter
-- counts from it), last_run when the check last ran or was updated,
-- ttl_deadline when a TTL check not updated turns critical.
CREATE TABLE registry_checks (
    id                  text        PRIMARY KEY,
    service_id          text        NOT NULL REFERENCES registry_services (id) ON DELETE CASCADE,
    name                text        NOT NULL,
    notes               text        NOT NULL,
    kind                text        NOT NULL,
    definition          jsonb       NOT NULL,
    deregister_after_ms bigint      NOT NULL,  -- 0: never
    status              text        NOT NULL,  -- 'passing', 'warning' or 'critical'
    output              text        NOT NULL,  -- at most 4 KiB
    status_since        timestamptz NOT NULL,
    last_run            timestamptz,
    ttl_deadline        timestamptz,
    create_index        bigint      NOT NULL,
    modify_index        bigint      NOT NULL
);

CREATE INDEX registry_checks_service ON registry_checks (service_id);
CREATE INDEX registry_checks_ttl ON registry_checks (ttl_deadline) WHERE kind = 'ttl';

-- Status transitions of checks: one row when a check is created and one
-- each time its status changes (not on every run). Rows outlive their
-- check, so a page can show why a service went away; the registry deletes
-- those older than its history retention.
CREATE TABLE registry_check_history (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    check_id   text        NOT NULL,
    service_id text        NOT NULL,
    status     text        NOT NULL,
    output     text        NOT NULL,
    at         timestamptz NOT NULL
);

CREATE INDEX registry_check_history_check ON registry_check_history (check_id, at DESC, id DESC);
CREATE INDEX registry_check_history_at ON registry_check_history (at);
