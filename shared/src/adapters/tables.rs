//! The one definition of the DynamoDB tables. The local bootstrap creates tables from it, and a
//! test proves `infra/template.yaml` declares the same keys, index and TTL.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    S,
    N,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub kind: KeyType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gsi {
    pub name: &'static str,
    pub pk: Key,
    pub sk: Option<Key>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// The template's logical id.
    pub logical_id: &'static str,
    /// The env var that names the table for the functions.
    pub env_var: &'static str,
    pub default_name: &'static str,
    pub pk: Key,
    pub sk: Option<Key>,
    pub gsi: Option<Gsi>,
    pub ttl_attribute: Option<&'static str>,
}

pub const RUNS_GSI: &str = "runs_by_time";
/// Sparse index of quarantined records: only they carry its partition key (`q_list`).
pub const QUARANTINE_GSI: &str = "quarantined";
/// The one `q_list` value.
pub const QUARANTINE_LIST: &str = "q";
/// Constant GSI partition value for run items (the lease item has none, so it is not listed).
pub const RUN_KIND: &str = "run";
/// The lease item's key in the sync_logs table.
pub const LEASE_KEY: &str = "lease#sync";
/// The catalogue counts item's key in the sync_logs table (not in the runs index).
pub const STATS_KEY: &str = "stats#catalogue";
/// The schema baseline item in the run log table (`domain::shape`).
pub const SCHEMA_KEY: &str = "schema#baseline";

/// The runs-index partition of one run's detail items.
pub fn detail_kind(sync_id: &str) -> String {
    format!("detail#{sync_id}")
}

/// A detail item's key: the run, then the hotel id zero-padded so keys sort by id.
pub fn detail_key(sync_id: &str, hotel_id: i64) -> String {
    format!("{sync_id}#d#{:020}", hotel_id.max(0))
}

pub const PROPERTIES: TableDef = TableDef {
    logical_id: "PropertiesTable",
    env_var: "PROPERTIES_TABLE",
    default_name: "cupid-properties",
    pk: Key {
        name: "hotel_id",
        kind: KeyType::N,
    },
    sk: None,
    gsi: Some(Gsi {
        name: QUARANTINE_GSI,
        pk: Key {
            name: "q_list",
            kind: KeyType::S,
        },
        sk: Some(Key {
            name: "hotel_id",
            kind: KeyType::N,
        }),
    }),
    ttl_attribute: None,
};

pub const DOCUMENTS: TableDef = TableDef {
    logical_id: "PropertyDocumentsTable",
    env_var: "DOCUMENTS_TABLE",
    default_name: "cupid-property-documents",
    pk: Key {
        name: "hotel_id",
        kind: KeyType::N,
    },
    sk: Some(Key {
        name: "facet",
        kind: KeyType::S,
    }),
    gsi: None,
    // Held (quarantined) payloads expire; documents carry no expiry.
    ttl_attribute: Some("expires_at"),
};

pub const SYNC_LOGS: TableDef = TableDef {
    logical_id: "SyncLogsTable",
    env_var: "SYNC_LOGS_TABLE",
    default_name: "cupid-sync-logs",
    pk: Key {
        name: "sync_id",
        kind: KeyType::S,
    },
    sk: None,
    gsi: Some(Gsi {
        name: RUNS_GSI,
        pk: Key {
            name: "log_kind",
            kind: KeyType::S,
        },
        sk: Some(Key {
            name: "sync_id",
            kind: KeyType::S,
        }),
    }),
    ttl_attribute: Some("expires_at"),
};

pub const SETTINGS: TableDef = TableDef {
    logical_id: "SyncSettingsTable",
    env_var: "SETTINGS_TABLE",
    default_name: "cupid-sync-settings",
    pk: Key {
        name: "setting_key",
        kind: KeyType::S,
    },
    sk: None,
    gsi: None,
    ttl_attribute: None,
};

pub const ALL: [TableDef; 4] = [PROPERTIES, DOCUMENTS, SYNC_LOGS, SETTINGS];
