//! cupid-sync: keeps a DynamoDB catalogue of hotel properties in step with the Cupid content API.
//!
//! Hexagonal: `domain` (pure rules) and `ports` (traits) know nothing of AWS or HTTP;
//! `adapters` implement the ports; `engine` is the sync; `api` is the HTTP edge; `wiring`
//! builds what each function needs from the environment.

pub mod adapters;
pub mod api;
pub mod config;
pub mod domain;
pub mod engine;
pub mod ports;
pub mod runtime_loop;
pub mod telemetry;
pub mod webhooks;
pub mod wiring;
