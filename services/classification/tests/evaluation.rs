//! The measured quality of the service on the held-out split of the
//! labelled corpus: fails when needs or emotion macro-F1 drops below 0.80,
//! when the corpus has near-duplicates across the split, or when the
//! compiled-in model was not retrained after a corpus edit.

use chrono::{TimeZone as _, Utc};
use rapport_classification::Policy;
use rapport_classification::corpus::{self, NEAR_DUPLICATE};

const MIN_MACRO_F1: f64 = 0.80;

fn corpus() -> (String, Vec<corpus::Example>) {
    let source = std::fs::read_to_string(corpus::default_path()).expect("corpus readable");
    let examples = corpus::parse(&source).expect("corpus parses");
    (source, examples)
}

#[test]
fn the_corpus_is_large_bilingual_and_covers_every_class() {
    let (_, examples) = corpus();
    assert!(examples.len() >= 400, "{} examples", examples.len());
    let chinese = examples
        .iter()
        .filter(|e| e.text.chars().any(rapport_classification::text::is_han))
        .count();
    assert!(
        chinese >= 150 && examples.len() - chinese >= 150,
        "zh {chinese}"
    );
    for need in rapport_classification::model::NEEDS {
        let held = examples
            .iter()
            .filter(|e| e.need == need && e.held_out)
            .count();
        assert!(held >= 10, "{need:?}: {held} held out");
    }
    for emotion in rapport_classification::model::EMOTIONS {
        let held = examples
            .iter()
            .filter(|e| e.emotion == emotion && e.held_out)
            .count();
        assert!(held >= 8, "{emotion:?}: {held} held out");
    }
}

#[test]
fn no_held_out_message_is_a_near_duplicate_of_a_training_one() {
    let (_, examples) = corpus();
    let duplicates = corpus::near_duplicates(&examples, NEAR_DUPLICATE);
    assert!(duplicates.is_empty(), "{duplicates:?}");
}

#[test]
fn the_builtin_model_was_trained_on_this_corpus() {
    let (source, _) = corpus();
    let policy = Policy::builtin().expect("policy");
    assert_eq!(
        policy.model().corpus_digest(),
        corpus::digest(&source),
        "the corpus changed since the model was trained: run `make train`"
    );
}

#[test]
fn held_out_macro_f1_meets_the_thresholds() {
    let (_, examples) = corpus();
    let policy = Policy::builtin().expect("policy");
    let now = Utc
        .with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .expect("date");
    let eval = corpus::evaluate(&policy, &examples, now);
    let report = format!(
        "{}{}",
        eval.needs.table("needs"),
        eval.emotion.table("emotion")
    );
    assert!(eval.needs.macro_f1 >= MIN_MACRO_F1, "{report}");
    assert!(eval.emotion.macro_f1 >= MIN_MACRO_F1, "{report}");
}
