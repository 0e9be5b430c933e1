//! openai-governor: access governance for OpenAI Platform organizations.
//!
//! Calls flow one way: `http → service → (domain, store, openai)`.

pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod openai;
pub mod service;
pub mod store;
pub mod telemetry;
