//! ferry's apiserver (issue #3, in progress): the Kubernetes REST API over hyper (axum) on
//! ferry's storage.
//!
//! - [`storage`]: objects and a change log on SQLite or PostgreSQL through sqlx, one global
//!   gap-free revision handed out by a group-commit writer, multi-object all-or-nothing
//!   transactions, watches that resume from any retained revision.
//! - [`api`]: discovery (aggregated and legacy), OpenAPI v2/v3, CRUD, list with label and field
//!   selectors and paging, watch, `status` subresource, admission (defaulting and validation
//!   with the `ferry validate` engine), Table output, errors as `Status` objects.
//! - [`server`]: TCP serving with drain-based shutdown.
//!
//! Still to come: PATCH (JSON, merge, strategic merge, server-side apply), `scale` and pod
//! `binding`, ClusterIP and NodePort allocation, authn/authz, audit, metrics.

pub mod api;
pub mod bootstrap;
pub mod server;
pub mod storage;
