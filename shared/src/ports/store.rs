//! Storage capabilities: what a sync reads, what it writes (every write fenced), what the admin
//! API changes, the run log, the lease and the settings.

use super::{PortError, PortErrorKind, PortResult, Usage};
use crate::domain::contract::Rule;
use crate::domain::document::Summary;
use crate::domain::lease::{LeaseRequest, LeaseState, Refused};
use crate::domain::quarantine::{Accepted, QuarantineNote};
use crate::domain::run::{FacetState, RunDetail, SyncRecord, SyncRun, SyncStatus, Tracked};
use crate::domain::settings::{SettingKey, SettingValue};
use crate::domain::stats::{CatalogueStats, StatusCounts};
use crate::domain::time::Timestamp;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

/// A stored facet document item (compressed canonical JSON, or one part of it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    pub hotel_id: i64,
    /// The item key: `property@a`, `lang#fr@b` (legacy: the facet key); parts after the
    /// first: `property@a~1`, ... ([`crate::domain::document::part_key`]).
    pub key: String,
    pub data_version: u64,
    pub content_hash: String,
    pub compressed: Vec<u8>,
    /// How many items the document spans (read on the head item; 1 for most documents).
    pub parts: u32,
}

/// One page of [`PropertyReader::scan_tracked`].
#[derive(Debug, Default)]
pub struct TrackedPage {
    pub items: Vec<Tracked>,
    /// Where the next page starts (exclusive); `None`: this was the last page.
    pub next: Option<i64>,
    pub usage: Usage,
}

#[async_trait]
pub trait PropertyReader: Send + Sync {
    /// One page (at most `limit` records evaluated) of the tracked properties in the store's
    /// scan order, starting after the record `after` (any key: a key the previous page returned
    /// or ended on, or a cursor saved by a run). A sync holds one page, not the whole table.
    async fn scan_tracked(&self, after: Option<i64>, limit: usize) -> PortResult<TrackedPage>;
    /// The tracked records among these ids (untracked and unknown ids are absent).
    async fn get_tracked(&self, ids: &[i64]) -> PortResult<(Vec<Tracked>, Usage)>;
    async fn get_record(&self, hotel_id: i64) -> PortResult<Option<SyncRecord>>;
    /// One document item by key (see [`FacetState::key`]).
    async fn get_document(
        &self,
        hotel_id: i64,
        key: &str,
    ) -> PortResult<(Option<StoredDoc>, Usage)>;

    /// A whole document: its head item and, for a document stored in parts, every part,
    /// joined. Each part must carry the head's version and hash; a part from another version
    /// (the slot is being rewritten under this reader) is an error of kind `Conflict`, never a
    /// mix of versions.
    async fn get_whole_document(
        &self,
        hotel_id: i64,
        key: &str,
    ) -> PortResult<(Option<StoredDoc>, Usage)> {
        let (head, mut usage) = self.get_document(hotel_id, key).await?;
        let Some(mut head) = head else {
            return Ok((None, usage));
        };
        for part in 1..head.parts {
            let pk = crate::domain::document::part_key(key, part);
            let (p, u) = self.get_document(hotel_id, &pk).await?;
            usage += u;
            match p {
                Some(p)
                    if p.data_version == head.data_version
                        && p.content_hash == head.content_hash =>
                {
                    head.compressed.extend_from_slice(&p.compressed);
                }
                _ => {
                    return Err(PortError::new(
                        format!("GetItem document hotel {hotel_id} {pk}"),
                        PortErrorKind::Conflict,
                        format!(
                            "part {part} of {} is missing or of another version (rewritten meanwhile)",
                            head.parts
                        ),
                    ));
                }
            }
        }
        Ok((Some(head), usage))
    }
}

/// One facet document item for a free slot: the whole document, or one part of it.
#[derive(Debug, Clone)]
pub struct DocWrite {
    pub hotel_id: i64,
    /// The document key (`property@a`); the item written is part `part` of it.
    pub key: String,
    pub part: u32,
    /// The document's part count (kept on the head item, part 0).
    pub parts: u32,
    pub data_version: u64,
    pub content_hash: String,
    pub compressed: Vec<u8>,
    pub fence: u64,
    pub sync_id: String,
    pub now: Timestamp,
}

/// What a document write did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocPut {
    pub usage: Usage,
    /// (Head writes) part indices of the slot beyond the new part count, left by earlier
    /// versions or crashed writes: unreachable, to be removed.
    pub stale: Vec<u32>,
}

/// Switches a record to its new documents: `data_version` goes up by exactly one.
#[derive(Debug, Clone)]
pub struct PropertyWrite {
    pub hotel_id: i64,
    pub expected_version: u64,
    /// Every facet's state after this write.
    pub facets: BTreeMap<String, FacetState>,
    /// Set when the property facet changed.
    pub summary: Option<Summary>,
    pub status: SyncStatus,
    pub error: Option<String>,
    pub sync_id: String,
    pub now: Timestamp,
    pub fence: u64,
}

/// An outcome recorded on the small record without a document write (unchanged, failed, not
/// found). `last_synced` moves for `synced`/`partial`, `last_checked` always.
#[derive(Debug, Clone)]
pub struct RecordOutcome {
    pub hotel_id: i64,
    pub status: SyncStatus,
    pub error: Option<String>,
    pub sync_id: String,
    pub now: Timestamp,
    pub fence: u64,
    /// With status `quarantined`: what was held back. Any other outcome (and every commit)
    /// removes a record's quarantine note and acceptances: it is out of quarantine.
    pub quarantine: Option<QuarantineNote>,
}

/// A held payload (compressed canonical JSON) kept for inspection until `expires_at`.
#[derive(Debug, Clone)]
pub struct HeldPayload {
    pub hotel_id: i64,
    pub facet: String,
    pub hash: String,
    pub compressed: Vec<u8>,
    pub fence: u64,
    pub sync_id: String,
    pub now: Timestamp,
    pub expires_at: i64,
}

/// A sync's writes to the catalogue. Each carries the invocation's fencing token and is refused
/// with `Fenced` once a newer token has written the same item; writes to a record are refused
/// with `Untracked` once it is untracked (untracking sticks). The write protocol for a changed
/// property is claim → documents into free slots → commit (ARCHITECTURE.md, "Write protocol").
#[async_trait]
pub trait PropertyWriter: Send + Sync {
    /// Marks the record as being written by `fence`, if it is tracked, still at
    /// `expected_version`, and no newer token has written it. After a claim, no older token can
    /// commit this record, so the documents the claimer writes are the ones it commits.
    async fn claim(&self, hotel_id: i64, expected_version: u64, fence: u64) -> PortResult<Usage>;
    /// Writes one document item; refused (`Fenced`) when a newer token wrote that item. The
    /// head (part 0) is written before the other parts and remembers every part index ever
    /// written in its slot; its answer lists those beyond the new part count (`stale`), for
    /// [`PropertyWriter::remove_parts`].
    async fn put_document(&self, doc: &DocWrite) -> PortResult<DocPut>;
    /// Deletes the stale parts of a slot (after the new parts are written) and forgets them on
    /// the head. Idempotent; fenced like every sync write.
    async fn remove_parts(
        &self,
        hotel_id: i64,
        key: &str,
        parts: &[u32],
        fence: u64,
    ) -> PortResult<Usage>;
    /// The commit point: conditional on the version read and on the claim still being ours.
    async fn commit(&self, w: &PropertyWrite) -> PortResult<Usage>;
    async fn record_outcome(&self, o: &RecordOutcome) -> PortResult<Usage>;
    /// Keeps a held payload (document item `quarantine#<facet>`, replaced by the next one),
    /// before the record says `quarantined`. Fenced like a document write.
    async fn put_held(&self, p: &HeldPayload) -> PortResult<Usage>;
}

/// A quarantined property as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldEntry {
    pub hotel_id: i64,
    pub note: QuarantineNote,
    pub accepted: Accepted,
}

impl HeldEntry {
    /// The entry of a record, if it is quarantined (and carries its note).
    pub fn of(r: &SyncRecord) -> Option<HeldEntry> {
        if r.sync_status != SyncStatus::Quarantined {
            return None;
        }
        Some(HeldEntry {
            hotel_id: r.hotel_id,
            note: r.quarantine.clone()?,
            accepted: r.accepted.clone(),
        })
    }
}

/// One page of quarantined properties, in hotel id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeldPage {
    pub items: Vec<HeldEntry>,
    /// The hotel id to continue after; `None`: this was the last page.
    pub next: Option<i64>,
}

/// The operators' side of quarantine. Reads and changes only quarantined records (status
/// `quarantined`); a record that is not is `NotFound`.
#[async_trait]
pub trait QuarantineDesk: Send + Sync {
    /// Quarantined properties after `after`, at most `limit`, those breaking `rule` only if
    /// given. Reads only the quarantined (a sparse index), never the catalogue.
    async fn list_held(
        &self,
        limit: usize,
        after: Option<i64>,
        rule: Option<Rule>,
    ) -> PortResult<HeldPage>;
    async fn held(&self, hotel_id: i64) -> PortResult<Option<HeldEntry>>;
    /// Records the acceptances (replacing earlier ones) of the payloads held by run `sync_id`
    /// (`Conflict` when a later run quarantined other payloads meanwhile). The next sync
    /// stores them.
    async fn accept(&self, hotel_id: i64, sync_id: &str, accepted: &Accepted) -> PortResult<()>;
    /// Drops the quarantine: the record goes back to `pending` (the next sync checks again)
    /// with `note` as its last error, and the held payloads are deleted.
    async fn discard(&self, hotel_id: i64, note: &str) -> PortResult<()>;
}

/// What a bulk track did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackResult {
    /// Ids never seen before.
    pub new: usize,
    /// Ids that were untracked and are tracked again.
    pub retracked: usize,
}

/// The admin API's changes to what is tracked. Each keeps the catalogue counts ([`Stats`])
/// up to date and bumps their epoch.
#[async_trait]
pub trait Tracking: Send + Sync {
    /// Starts tracking ids (new ones `pending`, untracked ones tracked again).
    async fn track(&self, ids: &[i64]) -> PortResult<TrackResult>;
    /// Stops tracking one id (data kept). NotFound when the id was never tracked.
    async fn untrack(&self, hotel_id: i64) -> PortResult<()>;
}

/// Where a page of runs starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunsFrom {
    /// After this run (a cursor a previous page returned): reads only the page.
    After(String),
    /// Skipping this many of the newest (reads the skipped runs' keys too).
    Offset(usize),
}

/// One page of a run's details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetailPage {
    pub items: Vec<RunDetail>,
    /// The hotel id to continue after; `None`: this was the last page.
    pub next: Option<i64>,
}

#[async_trait]
pub trait RunLog: Send + Sync {
    /// Creates a run written by `fence`; Conflict when the id exists. Counts the run.
    async fn create(&self, run: &SyncRun, fence: u64) -> PortResult<()>;
    async fn get(&self, sync_id: &str) -> PortResult<Option<SyncRun>>;
    /// Saves the whole run (checkpoint / finish); `Fenced` when a newer token has saved it. A
    /// successful finish is recorded as the catalogue's last success.
    async fn save(&self, run: &SyncRun, fence: u64) -> PortResult<Usage>;
    /// At most `limit` runs, newest first, and the cursor of the next page (`None`: no more).
    async fn list(
        &self,
        limit: usize,
        from: RunsFrom,
    ) -> PortResult<(Vec<SyncRun>, Option<String>)>;
    /// Writes a run's detail items (one per property; idempotent: a property's item is
    /// replaced). Not fenced: they are log lines keyed by property, written before the
    /// checkpoint that covers them.
    async fn put_details(&self, run: &SyncRun, details: &[RunDetail]) -> PortResult<Usage>;
    /// One page of a run's details in hotel id order, after `after`.
    async fn details(
        &self,
        sync_id: &str,
        limit: usize,
        after: Option<i64>,
    ) -> PortResult<DetailPage>;
    /// Every run in the log (a full read of the runs index: for recounts, not for admin reads).
    async fn count(&self) -> PortResult<u64>;
}

/// The schema baseline (`domain::shape`): one item, replaced when a run ends.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    async fn baseline(&self) -> PortResult<Option<crate::domain::drift::Baseline>>;
    /// Replaces the baseline; `Fenced` when one stored by a higher fencing token (a later
    /// run) is there.
    async fn save_baseline(&self, b: &crate::domain::drift::Baseline) -> PortResult<Usage>;
}

/// The catalogue counts (one small item). Reads are constant-time; see ARCHITECTURE.md
/// ("Counts") for how they stay right.
#[async_trait]
pub trait Stats: Send + Sync {
    async fn get(&self) -> PortResult<CatalogueStats>;
    /// Adds a sync's status moves (flushed with each checkpoint).
    async fn add(&self, delta: &StatusCounts) -> PortResult<()>;
    /// Records (or, with `None`, clears) why and since when the schedule paused itself.
    async fn set_paused(&self, paused: Option<(String, Timestamp)>) -> PortResult<()>;
    /// Replaces the counts of tracked statuses and the run count with a recount, if no tracking
    /// change happened since `epoch` was read (returns whether it did).
    async fn recount(
        &self,
        counts: &StatusCounts,
        runs: u64,
        epoch: u64,
        by: &str,
        now: Timestamp,
    ) -> PortResult<bool>;
}

/// The lease item. `apply` evaluates [`crate::domain::lease::apply`] against the stored state
/// and writes the result atomically (compare-and-set on the revision read), so every store
/// enforces the very same rules.
#[async_trait]
pub trait Lease: Send + Sync {
    async fn current(&self) -> PortResult<Option<LeaseState>>;
    async fn apply(
        &self,
        req: &LeaseRequest,
        ttl: Duration,
    ) -> PortResult<Result<LeaseState, Refused>>;
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
