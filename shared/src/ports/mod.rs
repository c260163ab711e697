//! What the domain needs from the outside world, one small trait per capability.
//! Implementations live in `adapters` (DynamoDB, AWS, Cupid HTTP, and an in-memory store with
//! DynamoDB's semantics); the contract suite runs the same cases against the in-memory store and
//! DynamoDB (moto).

pub mod hooks;
pub mod platform;
pub mod store;
pub mod upstream;

pub use hooks::*;
pub use platform::*;
pub use store::*;
pub use upstream::*;

use crate::domain::time::Timestamp;

/// Why a call to a dependency failed, with the call named.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{call}: {message}")]
pub struct PortError {
    pub call: String,
    pub kind: PortErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// A condition failed: someone else changed it first (a version moved).
    Conflict,
    /// A fenced write was refused: a newer fencing token has written here, or the lease is no
    /// longer ours. The invocation must stop at once.
    Fenced,
    /// The property was untracked (or is unknown): the sync leaves it alone.
    Untracked,
    NotFound,
    /// The dependency could not be reached or answered with a server error.
    Unavailable,
    /// The data we got back was not what we expected.
    Invalid,
}

impl PortError {
    pub fn new(call: impl Into<String>, kind: PortErrorKind, message: impl Into<String>) -> Self {
        PortError {
            call: call.into(),
            kind,
            message: message.into(),
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Read / write capacity consumed by a call (DynamoDB units).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub rcu: f64,
    pub wcu: f64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.rcu += o.rcu;
        self.wcu += o.wcu;
    }
}

/// Wall-clock time and new ids. The engine measures durations with tokio's clock (so tests can
/// pause it); this is for timestamps that are stored or compared across processes.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
    fn now(&self) -> Timestamp {
        Timestamp((self.now_ms() / 1000) as i64)
    }
    /// A new run id (time-sortable).
    fn new_id(&self) -> String {
        crate::domain::run::new_sync_id(self.now_ms())
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}
