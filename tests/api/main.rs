//! The integration test binary: the service over real HTTP on loopback, against real SQLite
//! and Postgres stores and the sandbox (our fake OpenAI) on its own port.
//!
//! Postgres tests run when `TEST_POSTGRES_URL` names a server we may create databases on
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`); under `CI=true` its absence is a failure.

mod helpers;
mod served;
mod spec;

mod access;
mod audit;
mod audit_chain;
mod auth;
mod changes;
mod cli;
mod client_ops;
mod client_paging;
mod client_resilience;
mod config;
mod connection_test;
mod connections;
mod contract;
mod crash;
mod feeds;
mod grants;
mod http_errors;
mod idempotency;
mod inventory;
mod jwks;
mod limits;
mod offboarding;
mod openapi;
mod policy;
mod rate_budget;
mod sandbox_writes;
mod store_conformance;
mod trust;
