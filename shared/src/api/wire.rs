//! Request and response bodies shared by the handlers and their clients (the CLI), so neither
//! side copies the other's structs.

use serde::{Deserialize, Serialize};

/// Every answer: `{"success": true, "data": …}` or `{"success": false, "error": …}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// An API error as clients read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

/// `PUT /api/v1/admin/properties`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackRequest {
    pub hotel_ids: Vec<i64>,
}

/// What a bulk track did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackResponse {
    /// Distinct ids in the request.
    pub requested: usize,
    /// `new + retracked`.
    pub newly_tracked: usize,
    /// Ids never seen before.
    pub new: usize,
    /// Ids that were untracked and are tracked again.
    pub retracked: usize,
    pub already_tracked: usize,
}
