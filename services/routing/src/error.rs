//! The one mapping from routing errors to gRPC statuses.

use crate::state::StateError;

impl From<StateError> for tonic::Status {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotFound(message) => tonic::Status::not_found(message),
            StateError::FailedPrecondition(message) => tonic::Status::failed_precondition(message),
            StateError::Redis(ref source) => rapport_kit::status::unavailable("redis", source),
            StateError::Corrupt(_) => {
                rapport_kit::status::internal("live state is inconsistent", &e)
            }
        }
    }
}
