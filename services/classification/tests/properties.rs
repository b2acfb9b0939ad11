//! Properties of `classify` over arbitrary requests: it never panics, always
//! explains itself, and patience stays within the policy's bounds.

use chrono::{DateTime, TimeZone as _, Utc};
use proptest::prelude::*;
use rapport_classification::{Policy, classify};
use rapport_proto::{
    ClassifyRequest, Customer, HistorySummary, Preferences, ProfileView, ValueTier, WaitEvidence,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .expect("valid date")
}

/// Places and dialects both known to the policy and not, in any case.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("Xiamen".to_owned()),
        Just("厦门市".to_owned()),
        Just("HONG KONG".to_owned()),
        Just("minnan".to_owned()),
        Just("闽南话".to_owned()),
        Just("zh-CN".to_owned()),
        Just("en".to_owned()),
        Just(" 市 ".to_owned()),
        "\\PC{0,24}",
        any::<String>(),
    ]
}

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    prop_oneof![
        Just(None),
        // Around now: inside and outside the lookback window, and future.
        (-800i64..30, 0i32..1_000_000_000).prop_map(|(days, nanos)| {
            Some(prost_types::Timestamp {
                seconds: now().timestamp() + days * 86_400,
                nanos,
            })
        }),
        // Anything, including out-of-range seconds and negative nanos.
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos })),
    ]
}

fn wait() -> impl Strategy<Value = WaitEvidence> {
    (
        prop_oneof![0u32..200, any::<u32>()],
        any::<bool>(),
        any::<bool>(),
        timestamp(),
    )
        .prop_map(|(wait_s, complaint, abandoned, at)| WaitEvidence {
            wait_s,
            complaint,
            abandoned,
            at,
        })
}

fn customer() -> impl Strategy<Value = Customer> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>()),
        (text(), text(), text(), text()),
        proptest::option::of(text()),
    )
        .prop_map(
            |((assets, contribution, potential_value), (city, region, language, dialect), pref)| {
                Customer {
                    assets,
                    contribution,
                    potential_value,
                    city,
                    region,
                    language,
                    dialect,
                    preferences: pref.map(|language| Preferences {
                        language,
                        ..Preferences::default()
                    }),
                    ..Customer::default()
                }
            },
        )
}

fn request() -> impl Strategy<Value = ClassifyRequest> {
    let summary = proptest::collection::vec(wait(), 0..25).prop_map(|waits| HistorySummary {
        waits_before_complaints: waits,
        ..HistorySummary::default()
    });
    (
        proptest::option::of((
            proptest::option::of(customer()),
            proptest::option::of(summary),
        )),
        text(),
        "\\PC{0,64}",
    )
        .prop_map(|(profile, language_hint, text)| ClassifyRequest {
            profile: profile.map(|(customer, summary)| ProfileView { customer, summary }),
            language_hint,
            text,
            ..ClassifyRequest::default()
        })
}

/// The built-in policy's text sections (needs, emotion, risk...), which
/// these properties do not vary.
fn text_sections() -> &'static str {
    let builtin = rapport_classification::policy::BUILTIN_POLICY;
    builtin.find("\n[text]\n").map_or("", |i| &builtin[i..])
}

/// Text of any kind: arbitrary Unicode, lexicon words with negators and
/// degree words shuffled in, punctuation runs, and long inputs.
fn any_text() -> impl Strategy<Value = String> {
    let words = proptest::sample::select(vec![
        "不",
        "不是",
        "很",
        "非常",
        "生气",
        "失望",
        "赔偿",
        "银保监会",
        "卡丢了",
        "not",
        "very",
        "angry",
        "refund",
        "regulator",
        "!",
        "！",
        "，",
        "but",
        "但是",
        "*",
        "'",
        "n't",
        "\n",
        " ",
        "😡",
    ]);
    prop_oneof![
        any::<String>(),
        "\\PC{0,600}",
        proptest::collection::vec(words, 0..80).prop_map(|w| w.concat()),
        proptest::collection::vec(any::<char>(), 0..2000).prop_map(|c| c.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn classify_never_panics_on_arbitrary_text(text in any_text()) {
        let policy = Policy::builtin().expect("built-in policy");
        let request = ClassifyRequest { text, ..ClassifyRequest::default() };
        let c = classify(&policy, &request, now());
        let emotion = c.emotion.expect("emotion");
        prop_assert!((0.0..=1.0).contains(&emotion.intensity));
        prop_assert!(!emotion.evidence.is_empty());
        prop_assert!((0.0..=1.0).contains(&c.churn_risk));
        let total: f64 = c.needs.iter().map(|n| n.weight).sum();
        // Each weight is rounded to three decimals.
        prop_assert!(total <= 1.0 + 0.006, "needs sum {}", total);
        prop_assert!(c.needs.iter().all(|n| !n.evidence.is_empty()));
        prop_assert!(c.risk_flags.iter().all(|f| !f.evidence.is_empty()));
        prop_assert!(!c.moment_of_truth.expect("moment").reason.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn classify_never_panics_and_patience_stays_in_bounds(request in request()) {
        let policy = Policy::builtin().expect("built-in policy");
        let bounds = policy.patience();
        let c = classify(&policy, &request, now());

        prop_assert!(c.patience_s >= bounds.floor_s && c.patience_s <= bounds.default_s,
            "patience {} outside [{}, {}]", c.patience_s, bounds.floor_s, bounds.default_s);
        prop_assert!(matches!(c.tier(), ValueTier::Standard | ValueTier::Preferred | ValueTier::Vip));
        prop_assert!(!c.tier_reason.is_empty());
        prop_assert!(!c.language_reason.is_empty());
        prop_assert!(!c.patience_reason.is_empty());
        prop_assert!(!c.language.is_empty());
        // What routing indexes agents by is always a clean name.
        prop_assert!(c.language.bytes().all(|b| b.is_ascii_lowercase()), "{:?}", c.language);
        prop_assert!(c.dialect.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
            "{:?}", c.dialect);
        prop_assert_eq!(c.policy_version.as_str(), policy.version());
    }

    #[test]
    fn patience_stays_in_bounds_under_any_valid_policy(
        default_s in 1u32..=3600,
        floor_frac in 0.0f64..=1.0,
        factor in 0.001f64..=1.0,
        min_evidence in 1u32..=20,
        lookback_days in 1u32..=3650,
        waits in proptest::collection::vec(wait(), 0..25),
    ) {
        let floor_s = ((f64::from(default_s) * floor_frac) as u32).clamp(1, default_s);
        let source = format!(
            "version = \"p\"\n[tiers.vip]\nassets = 2\n[tiers.preferred]\nassets = 1\n\
             [language]\ndefault = \"zh\"\n\
             [patience]\ndefault_s = {default_s}\nfactor = {factor:?}\nfloor_s = {floor_s}\n\
             min_evidence = {min_evidence}\nlookback_days = {lookback_days}\n{}",
            text_sections()
        );
        let policy = Policy::parse(&source).expect("valid policy");
        let request = ClassifyRequest {
            profile: Some(ProfileView {
                customer: None,
                summary: Some(HistorySummary {
                    waits_before_complaints: waits,
                    ..HistorySummary::default()
                }),
            }),
            ..ClassifyRequest::default()
        };
        let c = classify(&policy, &request, now());
        prop_assert!(c.patience_s >= floor_s && c.patience_s <= default_s);
    }
}
