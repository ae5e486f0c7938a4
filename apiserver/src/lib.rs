//! ferry's apiserver: the Kubernetes REST API over hyper (axum) on ferry's storage.
//!
//! - [`storage`]: objects and a change log on SQLite or PostgreSQL through sqlx, one global
//!   gap-free revision handed out by a group-commit writer, multi-object all-or-nothing
//!   transactions, watches that resume from any retained revision.
//! - [`api`]: discovery (aggregated and legacy), OpenAPI v2/v3, CRUD, list with label and field
//!   selectors and paging, watch, `status` subresource, admission (defaulting and validation
//!   with the `ferry validate` engine), Table output, errors as `Status` objects, request
//!   bodies in JSON, YAML or Kubernetes protobuf ([`api::protobuf`]).
//! - [`server`]: TCP serving with drain-based shutdown.
//! - [`api::transaction`]: many objects admitted and written as one transaction (the GitOps
//!   sync's path).
//!
//! Still to come: authn/authz and TLS (until then only loopback is served).

pub mod api;
pub mod bootstrap;
pub mod server;
pub mod storage;
