//! Decoding of the one-statement profile read: every part of a profile but
//! the customer row comes back as a JSON array in one column.
//!
//! A point read (GetProfile, LookupByPhone) is one statement so that it
//! costs one round trip and sees one snapshot without an explicit
//! transaction; see `load_one` in `sql.rs`. The two backends render values
//! differently inside JSON: SQLite gives booleans as 0/1 and timestamps as
//! its stored integer microseconds, PostgreSQL gives `true`/`false` and
//! RFC 3339 strings. The accessors here take either, so the decoding is
//! written once.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreError;
use super::codec;
use crate::model::{
    CampaignExposure, Contact, Event, HistorySummary, NeedWeight, Phone, Tag, WaitEvidence,
};

/// The rows of one packed part: `NULL` (PostgreSQL's aggregate of no rows)
/// and `[]` are both empty.
pub(crate) fn rows(part: &str, text: Option<&str>) -> Result<Vec<Value>, StoreError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    match serde_json::from_str(text) {
        Ok(Value::Array(rows)) => Ok(rows),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(_) => Err(corrupt(part, "is not a JSON array")),
        Err(e) => Err(corrupt(part, &e.to_string())),
    }
}

fn corrupt(part: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("packed {part} {what}"))
}

/// One packed row: a JSON array of cells by position.
pub(crate) struct Cells<'a> {
    part: &'a str,
    cells: &'a [Value],
}

impl<'a> Cells<'a> {
    pub(crate) fn of(part: &'a str, row: &'a Value) -> Result<Self, StoreError> {
        match row {
            Value::Array(cells) => Ok(Self { part, cells }),
            _ => Err(corrupt(part, "row is not an array")),
        }
    }

    fn cell(&self, i: usize) -> &'a Value {
        self.cells.get(i).unwrap_or(&Value::Null)
    }

    fn bad(&self, i: usize, want: &str) -> StoreError {
        corrupt(self.part, &format!("cell {i} is not {want}"))
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.cell(i) {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(self.bad(i, "text")),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| self.bad(i, "text"))
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(i) {
            Value::Null => Ok(None),
            // Sums of BIGINT are NUMERIC in PostgreSQL and may render as
            // a float-looking number; they are whole all the same.
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.round() as i64))
                .map(Some)
                .ok_or_else(|| self.bad(i, "an integer")),
            _ => Err(self.bad(i, "an integer")),
        }
    }

    pub(crate) fn count(&self, i: usize) -> Result<u32, StoreError> {
        Ok(codec::count(self.opt_int(i)?.unwrap_or(0)))
    }

    pub(crate) fn real(&self, i: usize) -> Result<f64, StoreError> {
        self.cell(i).as_f64().ok_or_else(|| self.bad(i, "a number"))
    }

    pub(crate) fn flag(&self, i: usize) -> Result<bool, StoreError> {
        match self.cell(i) {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) => Ok(n.as_i64().is_some_and(|v| v != 0)),
            _ => Err(self.bad(i, "a boolean")),
        }
    }

    pub(crate) fn opt_at(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.cell(i) {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .and_then(DateTime::from_timestamp_micros)
                .map(Some)
                .ok_or_else(|| self.bad(i, "a timestamp")),
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| self.bad(i, "a timestamp")),
            _ => Err(self.bad(i, "a timestamp")),
        }
    }

    pub(crate) fn at(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        self.opt_at(i)?.ok_or_else(|| self.bad(i, "a timestamp"))
    }
}

/// A customer's phones, declared needs and live tags.
pub(crate) type Children = (Vec<Phone>, Vec<NeedWeight>, Vec<Tag>);

/// The packed columns of a point read, as text (see `load_one`).
#[derive(Default)]
pub(crate) struct Packed {
    pub phones: Option<String>,
    pub needs: Option<String>,
    pub tags: Option<String>,
    pub counts: Option<String>,
    pub recent: Option<String>,
    pub waits: Option<String>,
    pub events: Option<String>,
    pub campaigns: Option<String>,
    pub affinity: Option<String>,
}

fn each<T>(
    part: &str,
    text: Option<&str>,
    mut f: impl FnMut(&Cells<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows(part, text)?
        .iter()
        .map(|row| f(&Cells::of(part, row)?))
        .collect()
}

impl Packed {
    /// Phones `[number, label]`, needs `[need, weight]` and live tags
    /// `[id, kind, text, author, created, expires]`, each in stored order.
    pub(crate) fn children(&self) -> Result<Children, StoreError> {
        let phones = each("phones", self.phones.as_deref(), |c| {
            Ok(Phone {
                number: c.text(0)?,
                label: c.text(1)?,
            })
        })?;
        let needs = each("needs", self.needs.as_deref(), |c| {
            Ok(NeedWeight {
                need: codec::parse_need(&c.text(0)?)?,
                weight: c.real(1)?,
            })
        })?;
        let tags = each("tags", self.tags.as_deref(), |c| {
            Ok(Tag {
                tag_id: c.text(0)?,
                kind: codec::parse_tag_kind(&c.text(1)?)?,
                text: c.text(2)?,
                author: c.text(3)?,
                created_at: c.at(4)?,
                expires_at: c.opt_at(5)?,
            })
        })?;
        Ok((phones, needs, tags))
    }

    /// Fills the summary's windowed counters and lists; the fields read
    /// from the customer row are the caller's.
    pub(crate) fn fill(&self, s: &mut HistorySummary) -> Result<(), StoreError> {
        // One row: c90, c7, c30, complaints, threats, abandoned, rejected,
        // compensation, handle_sum, handled, outbound30.
        let counts = rows("counts", self.counts.as_deref())?;
        if !counts.is_empty() {
            let row = Value::Array(counts);
            let c = Cells::of("counts", &row)?;
            s.contacts_90d = c.count(0)?;
            s.contacts_7d = c.count(1)?;
            s.contacts_30d = c.count(2)?;
            s.complaints_90d = c.count(3)?;
            s.escalation_threats_90d = c.count(4)?;
            s.abandoned_90d = c.count(5)?;
            s.solutions_rejected_90d = c.count(6)?;
            s.compensation_asked_90d = c.count(7)?;
            let (sum, handled) = (c.opt_int(8)?.unwrap_or(0), c.opt_int(9)?.unwrap_or(0));
            // Rounded to the nearest second, as the batch read does.
            s.mean_handle_s_90d = if handled > 0 {
                codec::count((sum + handled / 2) / handled)
            } else {
                0
            };
            s.outbound_30d = c.count(10)?;
        }
        s.recent_contacts = each("recent contacts", self.recent.as_deref(), contact)?;
        // [wait, complaint, outcome, started].
        s.waits_before_complaints = each("waits", self.waits.as_deref(), |c| {
            Ok(WaitEvidence {
                wait_s: c.count(0)?,
                complaint: c.flag(1)?,
                abandoned: c.opt_text(2)?.as_deref() == Some(codec::ABANDONED),
                at: c.at(3)?,
            })
        })?;
        s.recent_events = each("events", self.events.as_deref(), |c| {
            Ok(Event {
                event_id: c.text(0)?,
                kind: c.text(1)?,
                detail: c.text(2)?,
                occurred_at: c.at(3)?,
            })
        })?;
        s.recent_campaigns = each("campaigns", self.campaigns.as_deref(), |c| {
            Ok(CampaignExposure {
                campaign_id: c.text(0)?,
                title: c.text(1)?,
                channel: codec::parse_channel(&c.text(2)?)?,
                sent_at: c.at(3)?,
            })
        })?;
        s.affinity_agent_ids = rows("affinity", self.affinity.as_deref())?
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(corrupt("affinity", "agent is not text")),
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }
}

/// A contact packed in `contact_columns!` order.
fn contact(c: &Cells<'_>) -> Result<Contact, StoreError> {
    let csat = c
        .opt_int(11)?
        .map(|v| u8::try_from(v).map_err(|_| StoreError::Corrupt(format!("csat {v}"))))
        .transpose()?;
    Ok(Contact {
        contact_id: c.text(0)?,
        channel: codec::parse_channel(&c.text(1)?)?,
        direction: codec::parse_direction(&c.text(2)?)?,
        started_at: c.at(3)?,
        ivr_selection: c.text(4)?,
        queue_wait_s: c.count(5)?,
        handle_s: c.count(6)?,
        agent_id: c.text(7)?,
        outcome: c
            .opt_text(8)?
            .map(|o| codec::parse_outcome(&o))
            .transpose()?,
        complaint: c.flag(9)?,
        escalation_threat: c.flag(10)?,
        csat,
        solutions_offered: c.count(12)?,
        solutions_rejected: c.count(13)?,
        compensation_asked: c.flag(14)?,
        compensation_granted: c.flag(15)?,
        notes: c.text(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_either_backends_rendering() {
        let row: Value = serde_json::from_str(
            r#"[1, true, 0, false, 1733000000000000, "2024-11-30T20:53:20.000000+00:00", null, 7.0]"#,
        )
        .unwrap();
        let c = Cells::of("t", &row).unwrap();
        assert!(c.flag(0).unwrap() && c.flag(1).unwrap());
        assert!(!c.flag(2).unwrap() && !c.flag(3).unwrap());
        assert_eq!(c.at(4).unwrap(), c.at(5).unwrap());
        assert_eq!(c.opt_at(6).unwrap(), None);
        assert_eq!(c.opt_int(7).unwrap(), Some(7));
        assert!(c.text(0).is_err());
        // Past the end reads as NULL, which a required cell refuses.
        assert!(c.at(99).is_err());
    }

    #[test]
    fn null_and_empty_parts_are_empty_and_garbage_is_corrupt() {
        assert!(rows("x", None).unwrap().is_empty());
        assert!(rows("x", Some("[]")).unwrap().is_empty());
        assert!(rows("x", Some("null")).unwrap().is_empty());
        assert!(matches!(rows("x", Some("{}")), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            rows("x", Some("[1,")),
            Err(StoreError::Corrupt(_))
        ));
    }
}
