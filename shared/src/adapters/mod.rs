//! Implementations of the ports: DynamoDB, EventBridge Scheduler, Lambda, EventBridge, Cupid HTTP.
pub mod aws;
pub mod cupid;
pub mod dynamo;
pub mod memory;
pub mod tables;
pub mod webhook_http;

use crate::ports::{PortError, PortErrorKind};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// `Code: message` for service errors; the error chain (bounded) for transport errors.
fn concise<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("ServiceError"),
            se.message().unwrap_or("no message")
        ),
        None => {
            let mut m = DisplayErrorContext(e).to_string();
            m.truncate(300);
            m
        }
    }
}

/// Any AWS SDK error as a PortError naming the call; the kind from the service's error code.
pub(crate) fn port_err<E, R>(call: &str, e: SdkError<E, R>) -> PortError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match e.as_service_error().and_then(|s| s.code()) {
        Some("ConditionalCheckFailedException" | "ConflictException") => PortErrorKind::Conflict,
        Some("ResourceNotFoundException") => PortErrorKind::NotFound,
        Some("ValidationException") => PortErrorKind::Invalid,
        _ => PortErrorKind::Unavailable,
    };
    PortError::new(call, kind, concise(&e))
}
