//! ferry's apiserver (issue #3, in progress).
//!
//! Built so far: the storage layer ([`storage`]): objects and a change log on SQLite or
//! PostgreSQL through sqlx, one global gap-free revision handed out by a group-commit writer,
//! multi-object all-or-nothing transactions, and watches that resume from any retained
//! revision with nothing missed or repeated.
//!
//! Still to come: the Kubernetes REST API over hyper (discovery, OpenAPI, CRUD, list/watch,
//! subresources, admission and defaulting, authn/authz), the audit trail, and metrics.

pub mod storage;
