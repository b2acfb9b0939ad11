//! The one place store errors become gRPC statuses.
//!
//! Callers learn what they can act on (NOT_FOUND, ALREADY_EXISTS naming the
//! field, ABORTED to retry, UNAVAILABLE); anything else is an opaque
//! INTERNAL whose cause chain is logged. Messages never carry phone numbers
//! or names: the store's errors do not contain them, and database errors
//! are displayed by their message only (PostgreSQL keeps row values in the
//! error's detail, which is not shown).

use rapport_kit::status;
use tonic::Status;

use crate::store::StoreError;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CustomerNotFound => Status::not_found("customer not found"),
            StoreError::TagNotFound => Status::not_found("tag not found"),
            StoreError::ChangesPruned { horizon } => Status::out_of_range(format!(
                "resume_token: changes up to {horizon} are past the retention and were \
                 pruned; rebuild from ExportProfiles and watch again from an empty token"
            )),
            StoreError::CustomerExists => Status::already_exists(
                "customer.customer_id: a customer with this id already exists",
            ),
            StoreError::PhoneTaken { index } => Status::already_exists(format!(
                "customer.phones[{index}].number: owned by another customer"
            )),
            StoreError::StaleVersion { current } => Status::aborted(format!(
                "expected_version: the customer was changed meanwhile and is at version \
                 {current}; read it again and reapply the change"
            )),
            StoreError::BatchRow { source, .. } => Status::from(*source),
            StoreError::Contention(ref source) => {
                tracing::warn!(error = %status::ErrorChain(source), "profile write contention");
                Status::aborted("concurrent write to the same data; retry")
            }
            StoreError::Unavailable(_) => status::unavailable("profile database", &e),
            StoreError::Database(_)
            | StoreError::Embedded(_)
            | StoreError::Corrupt(_)
            | StoreError::InvalidUrl(_)
            | StoreError::Connect(..)
            | StoreError::Migrate(..) => status::internal("profile store failed", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn store_errors_map_to_actionable_codes() {
        let code = |e: StoreError| Status::from(e).code();
        assert_eq!(code(StoreError::CustomerNotFound), Code::NotFound);
        assert_eq!(code(StoreError::TagNotFound), Code::NotFound);
        assert_eq!(
            code(StoreError::ChangesPruned { horizon: 7 }),
            Code::OutOfRange
        );
        assert_eq!(code(StoreError::CustomerExists), Code::AlreadyExists);
        assert_eq!(code(StoreError::StaleVersion { current: 3 }), Code::Aborted);
        assert_eq!(
            code(StoreError::Contention(sqlx::Error::PoolTimedOut)),
            Code::Aborted
        );
        assert_eq!(
            code(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
            Code::Unavailable
        );
        assert_eq!(
            code(StoreError::Database(sqlx::Error::RowNotFound)),
            Code::Internal
        );
        assert_eq!(code(StoreError::Corrupt("x".into())), Code::Internal);

        let taken = Status::from(StoreError::PhoneTaken { index: 2 });
        assert_eq!(taken.code(), Code::AlreadyExists);
        assert!(taken.message().starts_with("customer.phones[2].number"));
    }

    #[test]
    fn internal_errors_say_nothing_about_the_cause() {
        let status = Status::from(StoreError::Corrupt("secret detail".into()));
        assert!(!status.message().contains("secret"));
    }
}
