//! A small multi-term matcher over normalized characters.
//!
//! Lexicons hold a few hundred terms and texts a few thousand characters;
//! indexing terms by their first character makes a scan cost one hash
//! lookup per character plus the few candidates that start there, which
//! keeps the whole rule pass in microseconds.

use std::collections::HashMap;

use super::is_word_char;

/// Terms (normalized, see [`super::normalize_str`]) with a value each.
///
/// A term that starts or ends with a letter or digit of a space-separated
/// language only matches at word boundaries ("no" does not match inside
/// "know"). A trailing `*` makes the end open: `refund*` matches "refunds"
/// and "refunded".
#[derive(Debug, Clone)]
pub struct Matcher<T> {
    entries: Vec<Entry<T>>,
    by_first: HashMap<char, Vec<usize>>,
}

#[derive(Debug, Clone)]
struct Entry<T> {
    term: String,
    chars: Vec<char>,
    open_end: bool,
    value: T,
}

/// One match: character offsets `[start, end)` in the searched text.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'m, T> {
    pub start: usize,
    pub end: usize,
    /// The term as written in the policy (normalized).
    pub term: &'m str,
    pub value: &'m T,
}

impl<T> Default for Matcher<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            by_first: HashMap::new(),
        }
    }
}

impl<T> Matcher<T> {
    /// Adds a term. Empty terms (or a lone `*`) are ignored; the policy
    /// refuses them before they get here.
    pub fn add(&mut self, term: &str, value: T) {
        let (body, open_end) = match term.strip_suffix('*') {
            Some(body) => (body, true),
            None => (term, false),
        };
        let chars: Vec<char> = body.chars().collect();
        let Some(&first) = chars.first() else {
            return;
        };
        let index = self.entries.len();
        self.entries.push(Entry {
            term: body.to_owned(),
            chars,
            open_end,
            value,
        });
        let bucket = self.by_first.entry(first).or_default();
        bucket.push(index);
        // Longest first, so the longest term at a position is found first.
        let entries = &self.entries;
        bucket.sort_by_key(|&i| std::cmp::Reverse(entries[i].chars.len()));
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every match in `text`, in order, except matches lying inside a longer
    /// match ("满意" inside "不满意" is not a separate finding).
    pub fn find<'m>(&'m self, text: &[char]) -> Vec<Hit<'m, T>> {
        let mut hits: Vec<Hit<'m, T>> = Vec::new();
        for start in 0..text.len() {
            let Some(bucket) = self.by_first.get(&text[start]) else {
                continue;
            };
            if is_word_char(text[start]) && start > 0 && is_word_char(text[start - 1]) {
                continue;
            }
            for &index in bucket {
                let entry = &self.entries[index];
                let end = start + entry.chars.len();
                if end > text.len() || text[start..end] != entry.chars[..] {
                    continue;
                }
                let last = entry.chars[entry.chars.len() - 1];
                if !entry.open_end
                    && is_word_char(last)
                    && text.get(end).is_some_and(|&c| is_word_char(c))
                {
                    continue;
                }
                hits.push(Hit {
                    start,
                    end,
                    term: &entry.term,
                    value: &entry.value,
                });
            }
        }
        // Drop matches strictly inside another one. Hits are few (a handful
        // per text), so the quadratic check is cheaper than anything clever.
        let spans: Vec<(usize, usize)> = hits.iter().map(|h| (h.start, h.end)).collect();
        hits.retain(|h| {
            !spans
                .iter()
                .any(|&(s, e)| s <= h.start && h.end <= e && (e - s) > (h.end - h.start))
        });
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::normalize;

    fn matcher(terms: &[&str]) -> Matcher<usize> {
        let mut m = Matcher::default();
        for (i, t) in terms.iter().enumerate() {
            m.add(t, i);
        }
        m
    }

    fn found(m: &Matcher<usize>, text: &str) -> Vec<String> {
        m.find(&normalize(text))
            .iter()
            .map(|h| h.term.to_owned())
            .collect()
    }

    #[test]
    fn longer_terms_hide_the_terms_inside_them() {
        let m = matcher(&["满意", "不满意", "银保监会"]);
        assert_eq!(found(&m, "我很不满意"), ["不满意"]);
        assert_eq!(
            found(&m, "挺满意的，不过要找银保监会"),
            ["满意", "银保监会"]
        );
    }

    #[test]
    fn words_match_at_boundaries_and_stars_open_the_end() {
        let m = matcher(&["no", "go to the press", "refund*"]);
        assert_eq!(found(&m, "I know"), Vec::<String>::new());
        assert_eq!(
            found(&m, "No. I will GO TO THE PRESS!"),
            ["no", "go to the press"]
        );
        assert_eq!(found(&m, "was it refunded?"), ["refund"]);
        assert_eq!(found(&m, "prefund"), Vec::<String>::new());
    }
}
