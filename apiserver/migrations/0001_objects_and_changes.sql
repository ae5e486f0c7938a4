-- ferry's storage: one schema for SQLite and PostgreSQL.
--
-- `ferry_meta` holds the one global revision (every object's resourceVersion) and how far the
-- change log has been compacted. Writers lock its row first, so revisions are handed out in
-- commit order without gaps, across processes too.
CREATE TABLE ferry_meta (
    id INTEGER PRIMARY KEY,
    revision BIGINT NOT NULL,
    compacted BIGINT NOT NULL
);
INSERT INTO ferry_meta (id, revision, compacted) VALUES (1, 0, 0);

-- Current objects, one row each; `body` is the object's JSON, resourceVersion included.
CREATE TABLE objects (
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);

-- Every create, update and delete, keyed by its revision: what watches read.
CREATE TABLE changes (
    revision BIGINT PRIMARY KEY,
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    committed_ms BIGINT NOT NULL
);
CREATE INDEX changes_committed ON changes (committed_ms);
