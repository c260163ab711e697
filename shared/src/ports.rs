//! What the domain needs from the outside world, one small trait per capability.
//! Implementations live in `adapters` (AWS, HTTP) and in tests (in-memory fakes).

use crate::domain::facet::Facet;
use crate::domain::interval::Interval;
use crate::domain::lease::{Acquired, LeaseState};
use crate::domain::run::{FacetState, SyncRecord, SyncRequest, SyncRun, SyncStatus, Tracked};
use crate::domain::settings::{SettingKey, SettingValue};
use crate::domain::time::Timestamp;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

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
    /// A condition failed: someone else changed it first.
    Conflict,
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

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
    fn now(&self) -> Timestamp {
        Timestamp((self.now_ms() / 1000) as i64)
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

/// A stored document (compressed canonical JSON) with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    pub hotel_id: i64,
    pub facet: String,
    pub data_version: u64,
    pub content_hash: String,
    pub compressed: Vec<u8>,
}

/// One changed facet document, written only if it is still at the version we read.
#[derive(Debug, Clone)]
pub struct FacetDoc {
    pub facet: String,
    /// None: the facet has never been stored.
    pub expected_version: Option<u64>,
    pub compressed: Vec<u8>,
    pub content_hash: String,
}

/// The changed facets of one property and its record update: the record's data_version goes up
/// by exactly one.
#[derive(Debug, Clone)]
pub struct PropertyWrite {
    pub hotel_id: i64,
    pub expected_version: u64,
    pub docs: Vec<FacetDoc>,
    /// Every facet's state after this write.
    pub facets: BTreeMap<String, FacetState>,
    /// Set when the property facet changed.
    pub summary: Option<crate::domain::document::Summary>,
    pub status: SyncStatus,
    pub error: Option<String>,
    pub sync_id: String,
    pub now: Timestamp,
}

/// Nothing changed: the small record's `last_synced` (and status) only.
#[derive(Debug, Clone)]
pub struct Touch {
    pub hotel_id: i64,
    pub status: SyncStatus,
    pub error: Option<String>,
    pub sync_id: String,
    pub now: Timestamp,
}

/// The outcome to record on a property's small record without a document write.
#[derive(Debug, Clone)]
pub struct RecordMark {
    pub hotel_id: i64,
    pub status: SyncStatus,
    pub error: Option<String>,
    pub sync_id: String,
    pub now: Timestamp,
}

/// One page of [`PropertyStore::scan_tracked`].
#[derive(Debug, Default)]
pub struct TrackedPage {
    pub items: Vec<Tracked>,
    /// Where the next page starts (exclusive); `None`: this was the last page.
    pub next: Option<i64>,
    pub usage: Usage,
}

#[async_trait]
pub trait PropertyStore: Send + Sync {
    /// One page (at most `limit` records evaluated) of the tracked properties (not
    /// `untracked`) in the store's scan order, starting after the record `after` (a key the
    /// previous page returned or ended on). A sync reads pages lazily, so an invocation holds
    /// one page, not the whole table, and a resumed run reads only what is left.
    async fn scan_tracked(&self, after: Option<i64>, limit: usize) -> PortResult<TrackedPage>;
    /// These ids' records (missing ids are absent from the result).
    async fn get_tracked(&self, ids: &[i64]) -> PortResult<(Vec<Tracked>, Usage)>;
    /// The current documents of these ids for `facet` (BatchGetItem, chunked).
    async fn get_documents(
        &self,
        ids: &[i64],
        facet: &str,
    ) -> PortResult<(HashMap<i64, StoredDoc>, Usage)>;
    /// Writes the changed facet documents, then bumps the record's data_version by one, each
    /// conditional on the version read (Conflict otherwise); rewriting identical content is
    /// always allowed, so a write interrupted between document and record heals on the next run.
    async fn write_property(&self, w: &PropertyWrite) -> PortResult<Usage>;
    /// Unchanged content: touch `last_synced` (and status) on the small record only.
    async fn touch(&self, t: &Touch) -> PortResult<Usage>;
    /// Records a not-found / failed outcome on the small record; data is kept.
    async fn mark(&self, m: &RecordMark) -> PortResult<Usage>;
    /// Starts tracking ids (new ones `pending`, untracked ones tracked again); returns how many
    /// were new or re-tracked.
    async fn track(&self, ids: &[i64]) -> PortResult<usize>;
    /// Stops tracking one id (data kept). NotFound when the id was never tracked.
    async fn untrack(&self, hotel_id: i64) -> PortResult<()>;
    async fn get_record(&self, hotel_id: i64) -> PortResult<Option<SyncRecord>>;
    /// Number of tracked properties (and what counting them read).
    async fn count_tracked(&self) -> PortResult<(u64, Usage)>;
}

#[async_trait]
pub trait RunLog: Send + Sync {
    /// Creates a run; Conflict when the id exists.
    async fn create(&self, run: &SyncRun) -> PortResult<()>;
    async fn get(&self, sync_id: &str) -> PortResult<Option<SyncRun>>;
    /// Saves the whole run (checkpoint / finish).
    async fn save(&self, run: &SyncRun) -> PortResult<Usage>;
    /// Runs newest first, with the total count.
    async fn list(&self, limit: usize, offset: usize) -> PortResult<(Vec<SyncRun>, u64)>;
}

#[async_trait]
pub trait Lease: Send + Sync {
    async fn acquire(&self, owner: &str, ttl: Duration) -> PortResult<Acquired>;
    /// Extends our lease; Ok(false) when it is no longer ours (fenced out).
    async fn heartbeat(&self, owner: &str, fence: u64, ttl: Duration) -> PortResult<bool>;
    async fn release(&self, owner: &str, fence: u64) -> PortResult<()>;
    async fn current(&self) -> PortResult<Option<LeaseState>>;
}

/// Why one upstream call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("not found upstream (404)")]
    NotFound,
    #[error("upstream refused the API key ({0}); check CUPID_API_KEY")]
    Unauthorized(u16),
    #[error("rate limited by upstream (429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("upstream server error ({0})")]
    Server(u16),
    #[error("upstream rejected the request ({0})")]
    Client(u16),
    #[error("upstream timed out after {0:?}")]
    Timeout(Duration),
    #[error("could not reach upstream: {0}")]
    Transport(String),
    #[error("malformed upstream body: {0}")]
    Malformed(String),
}

impl FetchError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FetchError::RateLimited { .. }
                | FetchError::Server(_)
                | FetchError::Timeout(_)
                | FetchError::Transport(_)
        )
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[async_trait]
pub trait Upstream: Send + Sync {
    /// One attempt at one facet of one hotel (`GET /v3.0/property/{id}`, `.../lang/{lang}`,
    /// `/v3.0/property/reviews/{id}/{count}`): the parsed JSON body.
    async fn fetch(&self, hotel_id: i64, facet: &Facet) -> Result<serde_json::Value, FetchError>;
}

#[async_trait]
pub trait Dispatch: Send + Sync {
    /// Starts the sync function asynchronously with this input.
    async fn dispatch(&self, req: &SyncRequest) -> PortResult<()>;
}

/// SyncCompleted / SyncFailed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunEvent {
    pub detail_type: &'static str,
    pub detail: serde_json::Value,
}

#[async_trait]
pub trait Events: Send + Sync {
    async fn publish(&self, event: &RunEvent) -> PortResult<()>;
}

/// The schedule as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleState {
    pub enabled: bool,
    pub interval: Interval,
    pub anchor: Option<Timestamp>,
}

#[async_trait]
pub trait Schedule: Send + Sync {
    async fn get(&self) -> PortResult<Option<ScheduleState>>;
    /// Creates or replaces the schedule.
    async fn put(
        &self,
        enabled: bool,
        interval: Interval,
        anchor: Timestamp,
    ) -> PortResult<ScheduleState>;
}

/// A stored setting value.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSetting {
    pub value: String,
    pub updated_at: Timestamp,
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn load(&self) -> PortResult<BTreeMap<String, StoredSetting>>;
    /// Writes all or nothing (one transaction).
    async fn put_all(
        &self,
        values: &[(SettingKey, SettingValue)],
        now: Timestamp,
    ) -> PortResult<()>;
}
