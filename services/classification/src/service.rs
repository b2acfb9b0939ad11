//! The gRPC surface of the classification service: request validation and
//! the call into the pure [`crate::classify()`].

use std::pin::Pin;

use chrono::Utc;
use rapport_kit::validate::{self, FieldError};
use rapport_proto as pb;
use tonic::{Request, Response, Status};

use crate::normalize;
use crate::policy::SharedPolicy;

pub(crate) struct Classifier {
    pub(crate) policy: SharedPolicy,
    pub(crate) max_text_bytes: u64,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::classification_service_server::ClassificationService for Classifier {
    async fn classify(
        &self,
        request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::Classification>, Status> {
        let request = request.into_inner();
        validate_request(&request, self.max_text_bytes)?;
        let policy = self.policy.current();
        Ok(Response::new(crate::classify(
            &policy,
            &request,
            Utc::now(),
        )))
    }

    type ClassifyStreamStream = Stream<pb::Classification>;

    async fn classify_stream(
        &self,
        _: Request<tonic::Streaming<pb::ClassifyStreamRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        Err(Status::unimplemented(
            "ClassificationService.ClassifyStream is not implemented yet \
             (classification issue: needs, emotion, moments of truth, risk and patience)",
        ))
    }
}

/// Longest IVR selection accepted; selections are short menu keys.
const MAX_IVR_SELECTION_LEN: usize = 64;

/// Checks what the caller controls. The profile is not checked field by
/// field: it comes from the profile service, which validated it on write,
/// and the rules tolerate any content (unknown values are ignored with a
/// note in the reason). Fields no rule reads yet are not checked either, so
/// a newer peer's additions do not fail requests.
pub(crate) fn validate_request(
    request: &pb::ClassifyRequest,
    max_text_bytes: u64,
) -> Result<(), FieldError> {
    // Bytes, not characters: the limit protects memory and CPU, and a
    // Chinese character is three bytes.
    let text_bytes = u64::try_from(request.text.len()).unwrap_or(u64::MAX);
    if text_bytes > max_text_bytes {
        return Err(FieldError::new(
            "text",
            format!("must be at most {max_text_bytes} bytes, got {text_bytes}"),
        ));
    }
    let hint = &request.language_hint;
    if !hint.is_empty() && normalize::language_tag(hint).is_none() {
        return Err(FieldError::new(
            "language_hint",
            "must be a BCP 47 language tag such as \"zh\" or \"en-GB\"",
        ));
    }
    if let Some(contact) = &request.contact {
        validate::enumeration::<pb::Channel>("contact.channel", contact.channel, true)?;
        validate::text(
            "contact.ivr_selection",
            &contact.ivr_selection,
            MAX_IVR_SELECTION_LEN,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<(), FieldError>) -> String {
        result.expect_err("invalid").field
    }

    #[test]
    fn text_is_limited_in_bytes() {
        let ok = pb::ClassifyRequest {
            text: "a".repeat(16),
            ..Default::default()
        };
        assert!(validate_request(&ok, 16).is_ok());
        // Six characters, eighteen bytes.
        let chinese = pb::ClassifyRequest {
            text: "非常失望失望".into(),
            ..Default::default()
        };
        assert_eq!(field(validate_request(&chinese, 16)), "text");
        assert!(validate_request(&pb::ClassifyRequest::default(), 16).is_ok());
    }

    #[test]
    fn unknown_channels_and_bad_hints_are_named() {
        let request = pb::ClassifyRequest {
            contact: Some(pb::ContactContext {
                channel: 42,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(field(validate_request(&request, 16)), "contact.channel");

        let request = pb::ClassifyRequest {
            language_hint: "Chinese please".into(),
            ..Default::default()
        };
        assert_eq!(field(validate_request(&request, 16)), "language_hint");

        let request = pb::ClassifyRequest {
            contact: Some(pb::ContactContext {
                ivr_selection: "x".repeat(65),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            field(validate_request(&request, 16)),
            "contact.ivr_selection"
        );
    }
}
