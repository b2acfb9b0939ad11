//! The text and history rules through the public `classify`, under the
//! built-in policy and model: each risk flag in Chinese and English,
//! negation and degree words, moment-of-truth windows with injected time,
//! needs from declared needs, history and text, guidance, and the seed
//! scenarios of DESIGN.md §3.

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use rapport_classification::{Policy, classify};
use rapport_proto::{
    Classification, ClassifyRequest, CommunicationTag, ContactRecord, Customer, CustomerEvent,
    Emotion, HistorySummary, Need, NeedWeight, ProfileView, PublicInfluence, RiskKind, TagKind,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .expect("valid date")
}

fn ts(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

fn policy() -> Policy {
    Policy::builtin().expect("built-in policy")
}

fn text(text: &str) -> Classification {
    classify(
        &policy(),
        &ClassifyRequest {
            text: text.into(),
            ..ClassifyRequest::default()
        },
        now(),
    )
}

fn with_history(summary: HistorySummary, customer: Customer, text: &str) -> Classification {
    classify(
        &policy(),
        &ClassifyRequest {
            profile: Some(ProfileView {
                customer: Some(customer),
                summary: Some(summary),
            }),
            text: text.into(),
            ..ClassifyRequest::default()
        },
        now(),
    )
}

fn flag(c: &Classification, kind: RiskKind) -> Option<&Vec<String>> {
    c.risk_flags
        .iter()
        .find(|f| f.kind() == kind)
        .map(|f| &f.evidence)
}

fn emotion(c: &Classification) -> (Emotion, f64) {
    let e = c.emotion.as_ref().expect("emotion");
    (e.emotion(), e.intensity)
}

// --- risk flags ------------------------------------------------------------

#[test]
fn escalation_threats_in_chinese_and_english() {
    for (t, term) in [
        ("再不解决我就去银保监会投诉你们", "银保监会"),
        ("我已经打了12315", "12315"),
        ("我要找媒体曝光你们", "媒体"),
        ("我会请律师起诉", "律师"),
        ("I will file a complaint with the regulator", "regulator"),
        ("I'm reporting this to the CFPB", "cfpb"),
        ("My lawyer will be in touch", "lawyer"),
        ("I'm going to go to the press with this", "go to the press"),
    ] {
        let c = text(t);
        let evidence = flag(&c, RiskKind::EscalationThreat).unwrap_or_else(|| panic!("{t}"));
        assert!(
            evidence.iter().any(|e| e.contains(term)),
            "{t}: {evidence:?}"
        );
    }
    // Naming the regulator while denying the intent is still pressure.
    let c = text("我不想闹到人民银行去，但你们得给我解决");
    let evidence = flag(&c, RiskKind::EscalationThreat).expect("veiled threat");
    assert!(evidence[0].contains("veiled"), "{evidence:?}");
    assert!(flag(&text("请问怎么开通网银"), RiskKind::EscalationThreat).is_none());
    // "sec" is a word, not a substring of "second".
    assert!(flag(&text("this is my second call"), RiskKind::EscalationThreat).is_none());
}

#[test]
fn solutions_exhausted_from_history_and_text() {
    let summary = HistorySummary {
        solutions_rejected_90d: 4,
        ..HistorySummary::default()
    };
    let c = with_history(summary, Customer::default(), "");
    let evidence = flag(&c, RiskKind::SolutionsExhausted).expect("history");
    assert!(
        evidence[0].starts_with("4 offered solutions rejected"),
        "{evidence:?}"
    );

    assert!(
        flag(
            &text("你们给的方案我都不接受"),
            RiskKind::SolutionsExhausted
        )
        .is_some()
    );
    assert!(
        flag(
            &text("None of these options work for me"),
            RiskKind::SolutionsExhausted
        )
        .is_some()
    );
    let two = HistorySummary {
        solutions_rejected_90d: 2,
        ..HistorySummary::default()
    };
    assert!(
        flag(
            &with_history(two, Customer::default(), ""),
            RiskKind::SolutionsExhausted
        )
        .is_none()
    );
}

#[test]
fn compensation_seeking_from_history_and_text() {
    let summary = HistorySummary {
        compensation_asked_90d: 3,
        ..HistorySummary::default()
    };
    let c = with_history(summary, Customer::default(), "");
    assert!(flag(&c, RiskKind::CompensationSeeking).is_some());
    assert!(
        flag(
            &text("把过期优惠券换成现金给我"),
            RiskKind::CompensationSeeking
        )
        .is_some()
    );
    assert!(
        flag(
            &text("Convert the coupons to cash instead"),
            RiskKind::CompensationSeeking
        )
        .is_some()
    );
}

#[test]
fn rule_disregard_in_chinese_and_english() {
    assert!(
        flag(
            &text("这就是霸王条款，网上攻略说可以改"),
            RiskKind::RuleDisregard
        )
        .is_some()
    );
    assert!(
        flag(
            &text("I don't care about your policy, make an exception"),
            RiskKind::RuleDisregard
        )
        .is_some()
    );
}

#[test]
fn repeat_caller_long_calls_and_public_influence() {
    let summary = HistorySummary {
        contacts_7d: 3,
        contacts_30d: 6,
        mean_handle_s_90d: 1500,
        ..HistorySummary::default()
    };
    let customer = Customer {
        public_influence: Some(PublicInfluence {
            social_followers: 250_000,
            media_presence: true,
        }),
        ..Customer::default()
    };
    let c = with_history(summary, customer, "");
    assert_eq!(
        flag(&c, RiskKind::RepeatCaller).expect("repeat")[0],
        "3 contacts in 7 days (≥ 3)"
    );
    assert!(flag(&c, RiskKind::LongCallCost).is_some());
    let public = flag(&c, RiskKind::PublicInfluence).expect("public");
    assert!(public.iter().any(|e| e.contains("250,000")), "{public:?}");

    let two = HistorySummary {
        contacts_7d: 2,
        ..HistorySummary::default()
    };
    assert!(
        flag(
            &with_history(two, Customer::default(), ""),
            RiskKind::RepeatCaller
        )
        .is_none()
    );
    assert!(flag(&text("我有几十万粉丝"), RiskKind::PublicInfluence).is_some());
    assert!(flag(&text("I'll tell my followers"), RiskKind::PublicInfluence).is_some());
}

// --- emotion: negation and degree -------------------------------------------

#[test]
fn negation_turns_anger_into_calm() {
    for t in [
        "我不是很生气，就是想问问",
        "I'm not angry at all, just asking",
    ] {
        let (e, _) = emotion(&text(t));
        assert_ne!(e, Emotion::Angry, "{t}");
        let c = text(t);
        let evidence = &c.emotion.as_ref().expect("emotion").evidence;
        assert!(
            evidence.iter().any(|e| e.contains("negated")),
            "{t}: {evidence:?}"
        );
    }
    assert_eq!(emotion(&text("我很生气！")).0, Emotion::Angry);
    assert_eq!(
        emotion(&text("I am really angry about this")).0,
        Emotion::Angry
    );
    // Two negators cancel; "不得不" is not a negator.
    assert_eq!(emotion(&text("我不得不说，我很生气")).0, Emotion::Angry);
}

#[test]
fn intensifiers_raise_and_softeners_lower_intensity() {
    let (e, strong) = emotion(&text("非常失望"));
    assert_eq!(e, Emotion::Upset);
    let (_, plain) = emotion(&text("失望"));
    let (_, soft) = emotion(&text("有点失望"));
    assert!(strong > plain && plain > soft, "{strong} {plain} {soft}");
    let c = text("非常失望");
    assert!(c.emotion.expect("emotion").evidence[0].contains("非常"));

    let (e, strong) = emotion(&text("I am extremely disappointed"));
    assert_eq!(e, Emotion::Upset);
    let (_, soft) = emotion(&text("I am slightly disappointed"));
    assert!(strong > soft, "{strong} {soft}");
}

#[test]
fn no_text_means_no_emotion_made_up() {
    let c = text("");
    assert_eq!(emotion(&c), (Emotion::Unspecified, 0.0));
    assert_eq!(c.primary_need(), Need::Unspecified);
    assert!(c.needs.is_empty());
}

// --- moments of truth ---------------------------------------------------------

fn event(kind: &str, hours_ago: i64) -> CustomerEvent {
    CustomerEvent {
        event_id: format!("E-{kind}"),
        kind: kind.into(),
        detail: String::new(),
        occurred_at: ts(now() - TimeDelta::hours(hours_ago)),
    }
}

fn events(events: Vec<CustomerEvent>) -> Classification {
    with_history(
        HistorySummary {
            recent_events: events,
            ..HistorySummary::default()
        },
        Customer::default(),
        "",
    )
}

#[test]
fn a_recent_event_is_a_moment_only_within_its_window() {
    let m = events(vec![event("card_lost", 71)])
        .moment_of_truth
        .expect("moment");
    assert!(m.flagged);
    assert!(
        m.reason.starts_with("card lost 2 days ago (within 72 h)"),
        "{}",
        m.reason
    );

    let m = events(vec![event("card_lost", 73)])
        .moment_of_truth
        .expect("moment");
    assert!(!m.flagged);
    assert!(m.reason.contains("outside the 72 h window"), "{}", m.reason);

    // Per-kind windows: a flight cancellation counts for 48 h.
    assert!(
        events(vec![event("flight_cancelled", 47)])
            .moment_of_truth
            .expect("m")
            .flagged
    );
    assert!(
        !events(vec![event("flight_cancelled", 49)])
            .moment_of_truth
            .expect("m")
            .flagged
    );
    assert!(
        events(vec![event("product_failure", 24 * 6)])
            .moment_of_truth
            .expect("m")
            .flagged
    );
}

#[test]
fn unknown_and_ordinary_event_kinds_are_ignored_with_a_note() {
    let m = events(vec![event("won_the_lottery", 1), event("birthday", 1)])
        .moment_of_truth
        .expect("moment");
    assert!(!m.flagged);
    assert!(
        m.reason
            .contains("unknown event kind \"won_the_lottery\" ignored"),
        "{}",
        m.reason
    );
    assert!(!m.reason.contains("birthday"), "{}", m.reason);
}

#[test]
fn charged_words_make_a_moment_of_truth() {
    for t in [
        "我的卡丢了，人还在国外",
        "My flight was cancelled and I'm stranded",
    ] {
        assert!(text(t).moment_of_truth.expect("moment").flagged, "{t}");
    }
    assert!(
        !text("请问网点几点开门")
            .moment_of_truth
            .expect("moment")
            .flagged
    );
}

// --- needs and guidance ---------------------------------------------------------

#[test]
fn needs_combine_declared_history_and_text() {
    let customer = Customer {
        declared_needs: vec![NeedWeight {
            need: Need::Recognition.into(),
            weight: 0.9,
        }],
        ..Customer::default()
    };
    let c = with_history(HistorySummary::default(), customer, "");
    assert_eq!(c.primary_need(), Need::Recognition);
    assert!(c.needs[0].evidence[0].contains("declared"));

    let c = text("我要求退款并赔偿损失");
    assert_eq!(c.primary_need(), Need::Compensation);
    assert!(c.needs[0].evidence.iter().any(|e| e.contains("退款")));
    // A refused compensation is not a compensation need.
    let c = text("我不要赔偿，只想要一个道歉");
    assert_ne!(c.primary_need(), Need::Compensation);

    assert_eq!(
        text("When will my new card arrive? What are the next steps?").primary_need(),
        Need::ConcretePlan
    );
    assert_eq!(
        text("没什么事，就是想找人聊聊天").primary_need(),
        Need::JustTalk
    );
    let weights: f64 = text("赔偿").needs.iter().map(|n| n.weight).sum();
    assert!(weights <= 1.0 + 1e-9);
}

#[test]
fn cautions_come_from_unexpired_caution_tags() {
    let tag = |kind: TagKind, text: &str, expires: Option<DateTime<Utc>>| CommunicationTag {
        kind: kind.into(),
        text: text.into(),
        expires_at: expires.and_then(ts),
        ..CommunicationTag::default()
    };
    let customer = Customer {
        tags: vec![
            tag(TagKind::Caution, "do not mention the 2023 dispute", None),
            tag(
                TagKind::Caution,
                "expired caution",
                Some(now() - TimeDelta::days(1)),
            ),
            tag(TagKind::AddressForm, "陈总", None),
        ],
        ..Customer::default()
    };
    let c = with_history(HistorySummary::default(), customer, "");
    assert_eq!(
        c.guidance.expect("guidance").cautions,
        ["do not mention the 2023 dispute"]
    );
}

// --- DESIGN.md §3 seed scenarios ---------------------------------------------------

#[test]
fn seed_every_solution_rejected_and_the_regulator_cited_goes_to_a_specialist() {
    let rejected = |days: i64| ContactRecord {
        contact_id: format!("C{days}"),
        started_at: ts(now() - TimeDelta::days(days)),
        solutions_offered: 2,
        solutions_rejected: 2,
        complaint: true,
        compensation_asked: true,
        ..ContactRecord::default()
    };
    let summary = HistorySummary {
        contacts_7d: 2,
        contacts_30d: 4,
        complaints_90d: 4,
        solutions_rejected_90d: 6,
        compensation_asked_90d: 3,
        recent_contacts: vec![rejected(2), rejected(9), rejected(20)],
        ..HistorySummary::default()
    };
    let c = with_history(
        summary,
        Customer::default(),
        "你们提的方案我都不接受，再不给我赔偿我就去银保监会投诉！",
    );
    let threat = flag(&c, RiskKind::EscalationThreat).expect("escalation threat");
    assert!(threat.iter().any(|e| e.contains("银保监会")), "{threat:?}");
    let exhausted = flag(&c, RiskKind::SolutionsExhausted).expect("solutions exhausted");
    assert!(
        exhausted
            .iter()
            .any(|e| e.contains("every solution rejected in 3 recent contacts")),
        "{exhausted:?}"
    );
    assert!(flag(&c, RiskKind::CompensationSeeking).is_some());

    let g = c.guidance.expect("guidance");
    assert!(
        g.escalation_policy.starts_with("specialist handling"),
        "{}",
        g.escalation_policy
    );
    assert!(
        g.script_scope.contains("no exceptions or payments"),
        "{}",
        g.script_scope
    );
    assert!(
        g.case_refs.contains(&"CASE-ESC-001".to_owned()),
        "{:?}",
        g.case_refs
    );
    assert!(!g.prepared_solutions.is_empty());
    assert!(c.churn_risk > 0.5, "{}", c.churn_risk);
    assert!(
        !c.churn_reason.is_empty(),
        "churn risk carries its evidence"
    );
}

#[test]
fn seed_a_card_lost_yesterday_is_a_moment_of_truth() {
    let c = events(vec![event("card_lost", 20)]);
    let m = c.moment_of_truth.expect("moment");
    assert!(
        m.flagged && m.reason.contains("card lost 20 h ago"),
        "{}",
        m.reason
    );
    let g = c.guidance.expect("guidance");
    assert!(
        g.escalation_policy.starts_with("empathy handling"),
        "{}",
        g.escalation_policy
    );
    assert!(
        g.prepared_solutions[0].contains("block the card"),
        "{:?}",
        g.prepared_solutions
    );
    assert_eq!(
        g.case_refs.first().map(String::as_str),
        Some("CASE-MOT-001")
    );
}

#[test]
fn seed_the_reference_vip_learns_a_patience_under_30_s() {
    let complaint = |wait_s, days| rapport_proto::WaitEvidence {
        wait_s,
        complaint: true,
        abandoned: false,
        at: ts(now() - TimeDelta::days(days)),
    };
    let summary = HistorySummary {
        total_contacts: 20,
        complaints_90d: 3,
        waits_before_complaints: vec![complaint(45, 5), complaint(38, 40), complaint(34, 80)],
        ..HistorySummary::default()
    };
    let customer = Customer {
        city: "Xiamen".into(),
        assets: 8_000_000,
        ..Customer::default()
    };
    let c = with_history(summary, customer, "");
    assert!(c.patience_s < 30, "{}", c.patience_s);
    assert_eq!(c.dialect, "minnan");
}
