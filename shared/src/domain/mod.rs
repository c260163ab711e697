//! Pure types and rules. No AWS or HTTP types here.
pub mod breaker;
pub mod contract;
pub mod decide;
pub mod document;
pub mod drift;
pub mod facet;
#[cfg(test)]
#[cfg(test)]
pub mod fixtures;
pub mod health;
pub mod interval;
pub mod json;
pub mod lease;
pub mod pause;
pub mod quarantine;
pub mod run;
pub mod setting_keys;
pub mod settings;
pub mod shape;
pub mod stats;
pub mod status;
pub mod time;
pub mod view;
pub mod webhook;
