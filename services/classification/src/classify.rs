//! The classification of one contact, composed from the rules.
//!
//! [`classify`] is a pure function — no I/O, no clock, no globals — so it is
//! trivially testable, replayable on recorded requests, and cheap enough
//! for the routing hot path.

use chrono::{DateTime, Utc};
use rapport_proto::{Classification, ClassifyRequest};

use crate::policy::Policy;
use crate::rules;

/// Classifies one contact under `policy`. `now` anchors every time window
/// (patience lookback, moment-of-truth events, silence); the service passes
/// the current time, tests and replays a fixed one.
///
/// The text (if any) is read once into a [`rules::TextReading`] that the
/// text rules share. Every output carries its reason or evidence, except
/// churn risk, whose proto field has no room for one (its reason is in
/// [`churn_reason`]).
pub fn classify(policy: &Policy, request: &ClassifyRequest, now: DateTime<Utc>) -> Classification {
    analyze(policy, request, now).classification
}

/// The explanation of the churn risk, which `Classification` cannot carry.
pub fn churn_reason(policy: &Policy, request: &ClassifyRequest, now: DateTime<Utc>) -> String {
    analyze(policy, request, now).churn_reason
}

/// A classification with the parts the proto has no field for.
pub(crate) struct Analysis {
    pub(crate) classification: Classification,
    pub(crate) churn_reason: String,
}

pub(crate) fn analyze(policy: &Policy, request: &ClassifyRequest, now: DateTime<Utc>) -> Analysis {
    let profile = request.profile.as_ref();
    let customer = profile.and_then(|p| p.customer.as_ref());
    let summary = profile.and_then(|p| p.summary.as_ref());

    let tier = rules::tier::tier(policy.tiers(), customer);
    let language = rules::language::language(policy.language(), customer, &request.language_hint);
    let patience = rules::patience::patience(policy.patience(), summary, now);

    let reading = rules::TextReading::new(policy, &request.text);
    let needs = rules::needs::needs(policy, customer, summary, &reading, now);
    let emotion = rules::emotion::emotion(policy, &reading);
    let moment = rules::moment::moment(policy, summary, &reading, &emotion, now);
    let risks = rules::risk::risks(policy, customer, summary, &reading);
    let churn = rules::churn::churn(
        policy,
        summary,
        &reading,
        &emotion,
        moment.result.flagged,
        &risks,
    );
    let guidance = rules::guidance::guidance(
        policy,
        customer,
        &risks,
        needs.primary,
        moment.category.as_deref(),
        now,
    );

    Analysis {
        classification: Classification {
            tier: tier.value.into(),
            tier_reason: tier.reason,
            language: language.value.language,
            dialect: language.value.dialect.unwrap_or_default(),
            language_reason: language.reason,
            patience_s: patience.value,
            patience_reason: patience.reason,
            needs: needs.scores,
            primary_need: needs.primary.into(),
            emotion: Some(emotion),
            moment_of_truth: Some(moment.result),
            risk_flags: risks,
            churn_risk: churn.value,
            churn_reason: churn.reason.clone(),
            guidance: Some(guidance),
            policy_version: policy.version().to_owned(),
        },
        churn_reason: churn.reason,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone as _};
    use rapport_proto::{Customer, HistorySummary, ProfileView, ValueTier, WaitEvidence};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
            .single()
            .expect("valid date")
    }

    /// DESIGN.md §3: 8,000,000 in deposits, private business owner, 40, from
    /// Xiamen; 20 earlier contacts with three complaints after transfer
    /// waits over 30 s.
    fn reference_request(now: DateTime<Utc>) -> ClassifyRequest {
        let complaint = |wait_s: u32, days_ago: i64| WaitEvidence {
            wait_s,
            complaint: true,
            abandoned: false,
            at: Some(prost_types::Timestamp {
                seconds: (now - TimeDelta::days(days_ago)).timestamp(),
                nanos: 0,
            }),
        };
        ClassifyRequest {
            profile: Some(ProfileView {
                customer: Some(Customer {
                    customer_id: "C-REF".into(),
                    name: "陈先生".into(),
                    city: "Xiamen".into(),
                    region: "Fujian".into(),
                    age_band: "35-44".into(),
                    occupation: "private business owner".into(),
                    assets: 8_000_000,
                    ..Customer::default()
                }),
                summary: Some(HistorySummary {
                    total_contacts: 20,
                    complaints_90d: 3,
                    waits_before_complaints: vec![
                        complaint(45, 12),
                        complaint(38, 40),
                        complaint(34, 80),
                    ],
                    ..HistorySummary::default()
                }),
            }),
            contact: Some(rapport_proto::ContactContext {
                channel: rapport_proto::Channel::Voice.into(),
                ivr_selection: "personal_wealth".into(),
                started_at: None,
            }),
            text: String::new(),
            language_hint: String::new(),
        }
    }

    #[test]
    fn the_reference_vip_case() {
        let policy = Policy::builtin().expect("built-in policy");
        let c = classify(&policy, &reference_request(now()), now());
        assert_eq!(c.tier(), ValueTier::Vip);
        assert_eq!(c.tier_reason, "assets 8,000,000 ≥ VIP threshold 5,000,000");
        assert_eq!(c.language, "zh");
        assert_eq!(c.dialect, "minnan");
        assert!(
            c.language_reason
                .contains("minnan inferred from city Xiamen")
        );
        assert!(c.patience_s < 30, "patience {}", c.patience_s);
        assert!(
            c.patience_reason
                .starts_with("patience 27 s from 3 complaints/hang-ups")
        );
        assert_eq!(c.policy_version, policy.version());
        // No text and a calm history: nothing made up.
        assert!(c.risk_flags.is_empty(), "{:?}", c.risk_flags);
        assert_eq!(
            c.emotion.as_ref().map(|e| e.emotion()),
            Some(rapport_proto::Emotion::Unspecified)
        );
    }

    #[test]
    fn an_unknown_caller_gets_defaults_with_reasons() {
        let policy = Policy::builtin().expect("built-in policy");
        let request = ClassifyRequest {
            language_hint: "en".into(),
            ..ClassifyRequest::default()
        };
        let c = classify(&policy, &request, now());
        assert_eq!(c.tier(), ValueTier::Standard);
        assert_eq!(c.tier_reason, "unknown caller");
        assert_eq!(c.language, "en");
        assert_eq!(c.dialect, "");
        assert_eq!(c.patience_s, 90);
        assert!(!c.patience_reason.is_empty());
    }
}
