//! ferry's apiserver (not built yet: issue #3).
//!
//! It will own the Kubernetes REST API over hyper (discovery, OpenAPI, CRUD, list/watch,
//! subresources, admission and defaulting, authn/authz), the storage layer (sqlx: SQLite
//! embedded, PostgreSQL for production, one global gap-free revision, a change log that watch
//! reads, group commit), the multi-object transaction API the GitOps sync applies commits with,
//! the audit trail, and metrics. Nothing here works yet, and nothing pretends to.
