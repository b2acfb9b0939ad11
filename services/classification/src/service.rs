//! The gRPC surface of the classification service: request validation,
//! the call into the pure [`crate::classify()`], the live-transcript
//! stream, and the metrics of each classification.

use std::pin::Pin;
use std::time::Instant;

use chrono::Utc;
use rapport_kit::validate::{self, FieldError};
use rapport_proto as pb;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::normalize;
use crate::policy::{SharedPolicy, risk_name};

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
        let c = timed_classify(&self.policy, &request);
        record_flags(&c, None);
        Ok(Response::new(c))
    }

    type ClassifyStreamStream = Stream<pb::Classification>;

    async fn classify_stream(
        &self,
        request: Request<tonic::Streaming<pb::ClassifyStreamRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        let mut inbound = request.into_inner();
        // Small: a slow reader should slow the classifier, not queue many
        // stale classifications.
        let (tx, rx) = mpsc::channel(4);
        let policy = self.policy.clone();
        let max_text_bytes = self.max_text_bytes;
        tokio::spawn(async move {
            let mut transcript = Transcript::default();
            let mut last: Option<(Signature, pb::Classification)> = None;
            loop {
                let message = match inbound.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "classify stream ended by the client");
                        break;
                    }
                };
                if let Err(e) = transcript.apply(message, max_text_bytes) {
                    let _ = tx.send(Err(Status::from(e))).await;
                    break;
                }
                let c = transcript.classify(&policy);
                let signature = Signature::of(&c);
                if last.as_ref().is_some_and(|(s, _)| *s == signature) {
                    continue;
                }
                record_flags(&c, last.as_ref().map(|(_, previous)| previous));
                if tx.send(Ok(c.clone())).await.is_err() {
                    break; // the client went away
                }
                last = Some((signature, c));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Classifies with the policy in force and records the latency.
fn timed_classify(policy: &SharedPolicy, request: &pb::ClassifyRequest) -> pb::Classification {
    let policy = policy.current();
    let started = Instant::now();
    let c = crate::classify(&policy, request, Utc::now());
    metrics::histogram!("rapport_classification_seconds").record(started.elapsed().as_secs_f64());
    c
}

/// Registers the flag counters of every kind at zero, so a dashboard shows
/// a rate for each kind from the start rather than after the first flag.
pub(crate) fn register_metrics() {
    for kind in crate::policy::RISK_KINDS {
        metrics::counter!("rapport_classification_flags_total", "kind" => risk_name(kind))
            .increment(0);
    }
    metrics::counter!("rapport_classification_flags_total", "kind" => "moment_of_truth")
        .increment(0);
}

/// Counts each risk flag and moment of truth raised — on a stream, only
/// those not already raised in the previous emission, so a long call does
/// not count one threat once per snippet.
fn record_flags(c: &pb::Classification, previous: Option<&pb::Classification>) {
    let had = |kind: pb::RiskKind| {
        previous.is_some_and(|p| p.risk_flags.iter().any(|f| f.kind() == kind))
    };
    for flag in &c.risk_flags {
        if !had(flag.kind()) {
            metrics::counter!("rapport_classification_flags_total", "kind" => risk_name(flag.kind()))
                .increment(1);
        }
    }
    let flagged = |c: &pb::Classification| c.moment_of_truth.as_ref().is_some_and(|m| m.flagged);
    if flagged(c) && !previous.is_some_and(flagged) {
        metrics::counter!("rapport_classification_flags_total", "kind" => "moment_of_truth")
            .increment(1);
    }
}

/// What makes a stream re-emit: a change an agent, routing or a supervisor
/// would act on. Intensity counts in steps of 0.2 so small drifts do not
/// flood the stream.
#[derive(Debug, PartialEq)]
struct Signature {
    primary_need: i32,
    emotion: i32,
    intensity_step: i64,
    moment: bool,
    risks: Vec<i32>,
    escalation_policy: String,
}

impl Signature {
    fn of(c: &pb::Classification) -> Self {
        let (emotion, intensity) = c
            .emotion
            .as_ref()
            .map_or((0, 0.0), |e| (e.emotion, e.intensity));
        Self {
            primary_need: c.primary_need,
            emotion,
            intensity_step: (intensity * 5.0).floor() as i64,
            moment: c.moment_of_truth.as_ref().is_some_and(|m| m.flagged),
            risks: c.risk_flags.iter().map(|f| f.kind).collect(),
            escalation_policy: c
                .guidance
                .as_ref()
                .map(|g| g.escalation_policy.clone())
                .unwrap_or_default(),
        }
    }
}

/// Snippets that make up "what is being said now" for the emotion.
const RECENT_SNIPPETS: usize = 2;

/// The state of one live transcript: the context, the text so far and the
/// latest snippets.
#[derive(Default)]
struct Transcript {
    request: pb::ClassifyRequest,
    recent: std::collections::VecDeque<String>,
}

impl Transcript {
    /// Applies one stream message. A message with `request` sets the
    /// context (its text, if any, replaces the transcript); a snippet is
    /// appended on a new line. When the transcript outgrows the text limit
    /// its oldest part is dropped: a live call is judged on what is being
    /// said now, and refusing a long call mid-way would help nobody. A
    /// single snippet over the limit is refused.
    fn apply(
        &mut self,
        message: pb::ClassifyStreamRequest,
        max_text_bytes: u64,
    ) -> Result<(), FieldError> {
        if let Some(request) = message.request {
            validate_request(&request, max_text_bytes).map_err(|e| FieldError {
                field: format!("request.{}", e.field),
                ..e
            })?;
            let text = if request.text.is_empty() {
                std::mem::take(&mut self.request.text)
            } else {
                request.text.clone()
            };
            self.request = pb::ClassifyRequest { text, ..request };
        }
        let limit = usize::try_from(max_text_bytes).unwrap_or(usize::MAX);
        if message.snippet.len() > limit {
            return Err(FieldError::new(
                "snippet",
                format!(
                    "must be at most {max_text_bytes} bytes, got {}",
                    message.snippet.len()
                ),
            ));
        }
        if !message.snippet.is_empty() {
            let text = &mut self.request.text;
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&message.snippet);
            if text.len() > limit {
                let mut cut = text.len() - limit;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                text.drain(..cut);
            }
            if self.recent.len() == RECENT_SNIPPETS {
                self.recent.pop_front();
            }
            self.recent.push_back(message.snippet);
        }
        Ok(())
    }

    /// Classifies the whole transcript, with the emotion of the latest
    /// snippets: needs and risks accumulate over a call, but the emotion is
    /// how the customer feels now — a calm greeting must not mask a panic
    /// five snippets later. A moment of truth raised by the recent emotion
    /// is kept too.
    fn classify(&self, policy: &SharedPolicy) -> pb::Classification {
        let mut c = timed_classify(policy, &self.request);
        if self.recent.len() > 1 {
            let recent = pb::ClassifyRequest {
                text: Vec::from(self.recent.clone()).join("\n"),
                ..self.request.clone()
            };
            let now = timed_classify(policy, &recent);
            c.emotion = now.emotion.clone();
            let flagged =
                |c: &pb::Classification| c.moment_of_truth.as_ref().is_some_and(|m| m.flagged);
            if !flagged(&c) && flagged(&now) {
                c.moment_of_truth = now.moment_of_truth;
            }
        }
        c
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
