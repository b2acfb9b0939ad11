//! Turning internal failures into gRPC statuses without leaking them.

use std::fmt::Display;

/// An INTERNAL status that tells the caller nothing about the cause; the
/// cause chain is logged instead. Use it for failures the caller cannot act
/// on (a broken invariant, an unexpected store error).
pub fn internal(context: &str, error: &(dyn std::error::Error + 'static)) -> tonic::Status {
    tracing::error!(error = %ErrorChain(error), "{context}");
    tonic::Status::internal("internal error")
}

/// UNAVAILABLE naming the dependency that failed, so a caller knows which
/// hop is down. The cause chain is logged, not returned.
pub fn unavailable(dependency: &str, error: &(dyn std::error::Error + 'static)) -> tonic::Status {
    tracing::warn!(dependency, error = %ErrorChain(error), "dependency unavailable");
    tonic::Status::unavailable(format!("{dependency} unavailable"))
}

/// Displays an error with all its sources, `outer: inner: root`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
