//! Text analysis shared by the rules and the learned model: normalization,
//! Chinese segmentation (jieba, loaded once per process) with English
//! tokenization, and the lexicon matcher that finds policy terms together
//! with the negation and degree words in front of them.
//!
//! Rules match lexicon terms on the normalized characters rather than on
//! jieba's tokens: an operator's term ("银保监会", "go to the press") must
//! match however the segmenter happens to split it, and a policy reload must
//! not need a new dictionary. The model, in contrast, reads jieba tokens,
//! because that is what it was trained on.

mod matcher;

use std::sync::LazyLock;

use jieba_rs::Jieba;

pub use matcher::{Hit, Matcher};

/// The segmenter with its default dictionary. Loading takes a fraction of a
/// second, so it happens once; [`warm_up`] forces it at startup so the first
/// request does not pay for it.
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Loads the segmenter now (the service calls this before serving).
pub fn warm_up() {
    LazyLock::force(&JIEBA);
}

/// Text normalized for matching: one `char` per input character, lowercase,
/// full-width ASCII folded to half-width, curly quotes made straight and
/// control characters other than newline turned into spaces. Keeping one output char per input
/// char keeps offsets meaningful for evidence.
pub fn normalize(text: &str) -> Vec<char> {
    text.chars().map(normalize_char).collect()
}

/// [`normalize`] as a `String` (policy terms are normalized the same way).
pub fn normalize_str(text: &str) -> String {
    text.chars().map(normalize_char).collect()
}

fn normalize_char(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        // Full-width ASCII (！，Ａ…) → half-width, then lowercase.
        '\u{FF01}'..='\u{FF5E}' => {
            char::from_u32(u32::from(c) - 0xFEE0).map_or(c, |h| h.to_ascii_lowercase())
        }
        '\u{3000}' => ' ',
        '\u{2018}' | '\u{2019}' | '\u{2032}' => '\'',
        '\u{201C}' | '\u{201D}' => '"',
        // Newlines end clauses (transcript snippets are joined with them);
        // other control characters are just spacing.
        '\n' => '\n',
        c if c.is_control() => ' ',
        c if c.is_uppercase() => {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        }
        c => c,
    }
}

/// Whether `c` is a Chinese (Han) character.
pub fn is_han(c: char) -> bool {
    matches!(u32::from(c),
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Whether `c` belongs to a word of a space-separated language.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_han(c)
}

/// Characters that end a clause: negation and degree words never reach
/// across them ("不好意思，我很生气" is not a negated anger).
pub fn is_clause_break(c: char) -> bool {
    matches!(
        c,
        '.' | ','
            | '!'
            | '?'
            | ';'
            | ':'
            | '。'
            | '、'
            | '\n'
            | '~'
            | '…'
            | '('
            | ')'
            | '【'
            | '】'
    )
}

/// Negation words the model's features know. Fixed in code rather than in
/// the policy: the model was trained with exactly these, and an operator
/// editing the policy must not silently change what the model sees.
const MODEL_NEGATORS: [&str; 20] = [
    "不", "没", "没有", "不是", "并不", "别", "不太", "不会", "未", "无", "not", "never", "don't",
    "doesn't", "didn't", "isn't", "wasn't", "aren't", "won't", "no",
];

/// The features the model reads: jieba words for Chinese runs, lowercase
/// words for other scripts, numbers folded to `<num>`, the two words after a
/// negator marked with `!` (so "不生气" and "生气" differ), plus bigrams of
/// adjacent words within a clause.
pub fn model_features(normalized: &[char]) -> Vec<String> {
    let mut words: Vec<Option<String>> = Vec::with_capacity(normalized.len() / 2 + 1);
    let mut bigrams: Vec<String> = Vec::new();
    let mut i = 0;
    while i < normalized.len() {
        let c = normalized[i];
        if is_han(c) {
            let start = i;
            while i < normalized.len() && is_han(normalized[i]) {
                i += 1;
            }
            let run: String = normalized[start..i].iter().collect();
            for token in JIEBA.cut(&run, true) {
                words.push(Some(token.word.to_owned()));
            }
            // Character bigrams as well: with a few hundred examples, the
            // model sees "生气" in "气死了" and "很气" only through them,
            // whatever the segmenter made of the run.
            for pair in normalized[start..i].windows(2) {
                bigrams.push(format!("#{}{}", pair[0], pair[1]));
            }
        } else if is_word_char(c) {
            let start = i;
            while i < normalized.len()
                && (is_word_char(normalized[i])
                    || (normalized[i] == '\''
                        && normalized.get(i + 1).is_some_and(|&n| is_word_char(n))))
            {
                i += 1;
            }
            let word: String = normalized[start..i].iter().collect();
            if word.chars().all(|c| c.is_ascii_digit()) {
                words.push(Some("<num>".to_owned()));
            } else {
                words.push(Some(stem(&word)));
            }
        } else {
            if is_clause_break(c) {
                // A clause break ends negation scope and bigrams.
                words.push(None);
            }
            i += 1;
        }
    }

    let mut features = Vec::with_capacity(words.len() * 2);
    let mut negation_left = 0u8;
    let mut previous: Option<String> = None;
    for word in words {
        let Some(word) = word else {
            negation_left = 0;
            previous = None;
            continue;
        };
        let feature = if negation_left > 0 {
            negation_left -= 1;
            format!("!{word}")
        } else {
            word.clone()
        };
        if MODEL_NEGATORS.contains(&word.as_str()) {
            negation_left = 2;
        }
        if let Some(prev) = previous.take() {
            features.push(format!("{prev} {word}"));
        }
        previous = Some(word);
        features.push(feature);
    }
    features.extend(bigrams);
    features
}

/// A light English stem: common inflections stripped so "refunds",
/// "refunded" and "refunding" are one feature. Deliberately crude — the
/// model only needs variants of a word to meet, not linguistic roots.
fn stem(word: &str) -> String {
    if !word.is_ascii() || word.len() <= 4 || word.contains('\'') {
        return word.to_owned();
    }
    for suffix in ["ing", "ed", "es", "s", "ly"] {
        if let Some(base) = word.strip_suffix(suffix)
            && base.len() >= 3
        {
            return base.to_owned();
        }
    }
    word.to_owned()
}

/// Negation and degree context of policy terms, from the policy's `[text]`
/// section.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) negators: Matcher<()>,
    /// Words that contain a negator but do not negate ("不得不", "not only").
    pub(crate) pseudo_negators: Matcher<()>,
    /// Multi-character clause breaks ("但是", "but").
    pub(crate) breaks: Matcher<()>,
    /// Degree words and their multipliers ("非常" 1.6, "a bit" 0.6).
    pub(crate) degree: Matcher<f64>,
    pub(crate) window_han: usize,
    pub(crate) window_words: usize,
    pub(crate) max_degree: f64,
}

/// What stands in front of a term.
#[derive(Debug, Clone, PartialEq)]
pub struct Modifiers {
    pub negated: bool,
    /// Product of the degree words' multipliers (1.0 without any).
    pub degree: f64,
    /// The negation and degree words found, for evidence.
    pub cues: Vec<String>,
}

impl Context {
    /// The negation and degree words in the window before `start`: at most
    /// `window_han` Chinese characters and `window_words` other words,
    /// never across a clause break.
    pub fn modifiers(&self, text: &[char], start: usize) -> Modifiers {
        let start = start.min(text.len());
        let mut from = start;
        let (mut han, mut words) = (0usize, 0usize);
        let mut in_word = false;
        while from > 0 {
            let c = text[from - 1];
            if is_clause_break(c) {
                break;
            }
            if is_han(c) {
                if han == self.window_han {
                    break;
                }
                han += 1;
                in_word = false;
            } else if is_word_char(c) || c == '\'' {
                if !in_word {
                    if words == self.window_words {
                        break;
                    }
                    words += 1;
                    in_word = true;
                }
            } else {
                in_word = false;
            }
            from -= 1;
        }
        let mut window = &text[from..start];
        // A multi-character break ("但是", "but") also ends the scope.
        if let Some(last) = self.breaks.find(window).last() {
            window = &window[last.end..];
        }

        let pseudo = self.pseudo_negators.find(window);
        let mut cues = Vec::new();
        let mut negations = 0usize;
        for hit in self.negators.find(window) {
            if pseudo
                .iter()
                .any(|p| p.start <= hit.start && hit.end <= p.end)
            {
                continue;
            }
            negations += 1;
            cues.push(hit.term.to_owned());
        }
        let mut degree = 1.0;
        for hit in self.degree.find(window) {
            degree *= *hit.value;
            cues.push(hit.term.to_owned());
        }
        Modifiers {
            // "不是不生气" (double negation) is not a negation.
            negated: negations % 2 == 1,
            degree: degree.clamp(1.0 / self.max_degree, self.max_degree),
            cues,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_folds_width_case_and_quotes() {
        assert_eq!(normalize_str("ＡＢｃ！，Hello"), "abc!,hello");
        assert_eq!(normalize_str("I\u{2019}m"), "i'm");
        assert_eq!(normalize_str("非常失望\t"), "非常失望 ");
        assert_eq!(normalize("航班取消").len(), 4);
    }

    #[test]
    fn features_segment_chinese_and_mark_negation() {
        let f = model_features(&normalize("我不是很生气，只是想问问"));
        assert!(f.iter().any(|t| t == "!很" || t == "!生气"), "{f:?}");
        assert!(f.iter().any(|t| t == "问问"), "{f:?}");
        let f = model_features(&normalize("I'm NOT angry at all, call me at 555"));
        assert!(f.contains(&"!angry".to_owned()), "{f:?}");
        assert!(f.contains(&"<num>".to_owned()), "{f:?}");
        assert!(f.contains(&"i'm not".to_owned()), "{f:?}");
        assert!(model_features(&normalize("")).is_empty());
    }
}
