//! The one mapping from scheduler errors to gRPC statuses.

use crate::store::StoreError;

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Redis(ref source) => rapport_kit::status::unavailable("redis", source),
            StoreError::Corrupt(_) | StoreError::Parse(_) => {
                rapport_kit::status::internal("outreach state is inconsistent", &e)
            }
        }
    }
}

/// A dependency's failure as seen by our caller: the dependency is named,
/// the cause is logged.
pub(crate) fn dependency(name: &str, status: tonic::Status) -> tonic::Status {
    tracing::warn!(dependency = name, code = ?status.code(), message = status.message(), "dependency call failed");
    match status.code() {
        // A bad request we built is our bug, not the caller's.
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::Internal => {
            tonic::Status::internal("internal error")
        }
        _ => tonic::Status::unavailable(format!("{name} unavailable")),
    }
}
