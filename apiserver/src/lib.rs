//! The minik8s API server: HTTPS transport, authentication, authorization, admission, the
//! generic registry with per-kind strategies, discovery, OpenAPI, and watch.

pub mod actions;
pub mod admission;
pub mod auth;
pub mod conversion;
pub mod discovery;
pub mod error;
pub mod handler;
pub mod join;
pub mod list;
pub mod managedfields;
pub mod meta;
pub mod metrics;
pub mod nscache;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod resources;
pub mod scale;
pub mod schema;
pub mod selector;
pub mod server;
pub mod services;
pub mod strategy;
pub mod streaming;
pub mod table;
pub mod tokens;
pub mod validation;
pub mod watch;
