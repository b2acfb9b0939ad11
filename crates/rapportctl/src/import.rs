//! `rapportctl import`: bulk-loads customers, phones, tags and contacts into
//! the profile database, straight through the profile store.
//!
//! Input is JSONL (one customer per line, phones, tags and contacts nested)
//! or CSV (one record per row, a `record` column saying which: `customer`,
//! `phone`, `tag` or `contact`; the rows of one customer follow its
//! `customer` row). Every customer is checked with the same rules as the
//! RPCs and written whole or not at all: a bad row rejects its whole
//! customer, reported with its line number and the field at fault, never
//! with the value (it may be a phone number or a name).
//!
//! Customers are written in batches, one transaction each. After every
//! committed batch the checkpoint file records the last line it covered;
//! a rerun resumes after it. Replaying a batch is harmless (the store's
//! batch import is idempotent), so a crash between a commit and the
//! checkpoint write loses nothing and duplicates nothing.
//!
//! `--on-error skip` reports bad customers and goes on; `--on-error abort`
//! reports the first one and stops before committing its batch.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use rapport_kit::phone::Region;
use rapport_profile::model::ImportCustomer;
use rapport_profile::store::{Backend, PoolOptions, Store as _, StoreError};
use rapport_proto as pb;

/// What to do with a customer that fails validation or cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Report it and import the rest.
    Skip,
    /// Report it and stop; its batch is not committed.
    Abort,
}

/// Input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

/// `rapportctl import` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to import (or to write with `--generate`).
    pub file: PathBuf,
    /// The profile database, as the profile service takes it.
    #[arg(
        long,
        env = "RAPPORT_DATABASE_URL",
        default_value = "sqlite://rapport-profile.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Input format; by default from the file extension (.csv, else JSONL).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Customers per transaction.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    #[arg(long, value_enum, default_value = "skip")]
    pub on_error: OnError,
    /// Where progress is kept; by default FILE.checkpoint. Delete it to
    /// import from the start again.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Region for numbers written without a leading '+'.
    #[arg(long, env = "RAPPORT_DEFAULT_REGION", default_value = "CN")]
    pub default_region: Region,
    /// Write a sample JSONL file of this many customers to FILE instead of
    /// importing (for benchmarks and trials).
    #[arg(long, value_name = "CUSTOMERS")]
    pub generate: Option<u64>,
    /// Contacts per generated customer.
    #[arg(long, default_value_t = 20)]
    pub contacts: u32,
    /// Make every Nth generated customer invalid (0: none).
    #[arg(long, default_value_t = 0)]
    pub bad_every: u64,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub customers: u64,
    pub contacts: u64,
    /// (line, problem) of every rejected customer's rows.
    pub rejected: Vec<(u64, String)>,
    /// The checkpoint the run started from.
    pub resumed_after: u64,
    /// How long reading waited for the database to commit the previous
    /// batch: near the total, the load is bound by the database; near
    /// zero, by reading and validating the input.
    pub waited_for_store: std::time::Duration,
}

/// Runs the subcommand.
#[allow(clippy::print_stdout)]
pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(customers) = args.generate {
        generate(&args.file, customers, args.contacts, args.bad_every)?;
        println!("wrote {customers} customers to {}", args.file.display());
        return Ok(());
    }
    let started = Instant::now();
    let report = import(&args, true).await?;
    for (line, problem) in &report.rejected {
        eprintln!("line {line}: {problem}");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} customers and {} new contacts in {secs:.1} s ({:.0} customers/s; \
         {:.1} s of it waiting for the database){}{}",
        report.customers,
        report.contacts,
        report.customers as f64 / secs.max(1e-9),
        report.waited_for_store.as_secs_f64(),
        if report.resumed_after > 0 {
            format!(", resumed after line {}", report.resumed_after)
        } else {
            String::new()
        },
        if report.rejected.is_empty() {
            String::new()
        } else {
            format!("; {} rows rejected", report.rejected.len())
        },
    );
    Ok(())
}

/// One customer as read: the lines it came from and what they said.
struct Parsed {
    first_line: u64,
    last_line: u64,
    result: Result<ImportCustomer, Vec<(u64, String)>>,
}

/// Imports `args.file`; `progress` draws a bar on a terminal.
pub async fn import(args: &Args, progress: bool) -> anyhow::Result<Report> {
    let format = args.format.unwrap_or_else(|| {
        if args.file.extension().is_some_and(|e| e == "csv") {
            Format::Csv
        } else {
            Format::Jsonl
        }
    });
    let checkpoint_path = args.checkpoint.clone().unwrap_or_else(|| {
        let mut p = args.file.clone().into_os_string();
        p.push(".checkpoint");
        PathBuf::from(p)
    });
    let resumed_after = read_checkpoint(&checkpoint_path)?;
    // Durable at every checkpoint rather than every commit: a replayed
    // batch is harmless (see above), and the load runs much faster.
    let store = Backend::connect(
        &args.database_url,
        PoolOptions {
            bulk_load: true,
            ..PoolOptions::default()
        },
    )
    .await
    .context("failed to open the profile database")?;
    let file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if progress {
        indicatif::ProgressBar::new(size)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let now = Utc::now();
    let mut report = Report {
        resumed_after,
        ..Report::default()
    };
    let mut batch = Batch::default();
    let writer = Writer {
        store: store.clone(),
        checkpoint: checkpoint_path.clone(),
        on_error: args.on_error,
        now,
    };
    // The batch being committed while the next one is parsed: parsing and
    // validating (one core) overlap with SQLite's writes (its own thread).
    let mut in_flight: Option<tokio::task::JoinHandle<anyhow::Result<(Report, bool)>>> = None;
    let region = args.default_region;
    let mut aborted = false;
    let mut bytes = 0;
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut next = Reader::new(format, reader, region, now)?;
    while let Some(parsed) = next.next_customer(&mut bytes)? {
        bar.set_position(bytes);
        if parsed.last_line <= resumed_after {
            continue;
        }
        if parsed.result.is_err() && args.on_error == OnError::Abort {
            let Err(problems) = parsed.result else {
                continue;
            };
            report.rejected.extend(problems);
            aborted = true;
            break;
        }
        // Ids must be distinct within a batch: a repeat starts a new one.
        if let Ok(c) = &parsed.result
            && batch.ids.contains(&c.customer.customer_id)
            && !writer
                .start(&mut in_flight, std::mem::take(&mut batch), &mut report)
                .await?
        {
            aborted = true;
            break;
        }
        match parsed.result {
            Err(problems) => report.rejected.extend(problems),
            Ok(customer) => batch.push(parsed.first_line, customer),
        }
        // Rejected rows count as done too: a rerun does not report them
        // again.
        batch.last_line = parsed.last_line;
        if batch.rows.len() >= args.batch as usize {
            if !writer
                .start(&mut in_flight, std::mem::take(&mut batch), &mut report)
                .await?
            {
                aborted = true;
                break;
            }
            bar.set_message(format!("{} customers", report.customers));
        }
    }
    if aborted {
        // Whatever was in flight was fine to commit: it precedes the bad row.
        if let Some(previous) = in_flight.take() {
            merge(&mut report, previous.await??.0);
        }
    } else {
        let last = std::mem::take(&mut batch);
        if !writer.start(&mut in_flight, last, &mut report).await?
            || !settle(&mut in_flight, &mut report).await?
        {
            aborted = true;
        }
    }
    bar.finish_and_clear();
    store.close().await;
    report.rejected.sort();
    if aborted {
        for (line, problem) in &report.rejected {
            eprintln!("line {line}: {problem}");
        }
        bail!(
            "import aborted: {} customers imported before the bad row; fix it and rerun to \
             resume after line {}",
            report.customers,
            read_checkpoint(&checkpoint_path)?
        );
    }
    Ok(report)
}

#[derive(Default)]
struct Batch {
    /// The first line of each customer in `rows`.
    lines: Vec<u64>,
    /// Handed to the store as they are, without copying.
    rows: Vec<ImportCustomer>,
    ids: HashSet<String>,
    /// The last line read into this batch (rejected rows included).
    last_line: u64,
}

impl Batch {
    fn push(&mut self, first: u64, customer: ImportCustomer) {
        self.ids.insert(customer.customer.customer_id.clone());
        self.lines.push(first);
        self.rows.push(customer);
    }
}

#[derive(Clone)]
struct Writer {
    store: Backend,
    checkpoint: PathBuf,
    on_error: OnError,
    now: DateTime<Utc>,
}

fn merge(report: &mut Report, part: Report) {
    report.customers += part.customers;
    report.contacts += part.contacts;
    report.rejected.extend(part.rejected);
}

/// Waits for the batch in flight; `false` when it aborted the import.
async fn settle(
    in_flight: &mut Option<tokio::task::JoinHandle<anyhow::Result<(Report, bool)>>>,
    report: &mut Report,
) -> anyhow::Result<bool> {
    let Some(previous) = in_flight.take() else {
        return Ok(true);
    };
    let started = Instant::now();
    let (part, ok) = previous.await??;
    report.waited_for_store += started.elapsed();
    merge(report, part);
    Ok(ok)
}

impl Writer {
    /// Waits for the previous batch (checkpoints move in order), then
    /// starts committing `batch`; `false` when the previous one aborted.
    async fn start(
        &self,
        in_flight: &mut Option<tokio::task::JoinHandle<anyhow::Result<(Report, bool)>>>,
        mut batch: Batch,
        report: &mut Report,
    ) -> anyhow::Result<bool> {
        if !settle(in_flight, report).await? {
            return Ok(false);
        }
        let writer = self.clone();
        *in_flight = Some(tokio::spawn(async move {
            let mut part = Report::default();
            let ok = writer.flush(&mut batch, &mut part).await?;
            Ok((part, ok))
        }));
        Ok(true)
    }

    /// Commits the batch and moves the checkpoint. A row the store refuses
    /// (a phone owned by another customer) is reported and dropped, and
    /// the rest retried (skip), or nothing is committed (abort: `false`).
    async fn flush(&self, batch: &mut Batch, report: &mut Report) -> anyhow::Result<bool> {
        let last_line = batch.last_line;
        while !batch.rows.is_empty() {
            match self.store.import_batch(&batch.rows, self.now).await {
                Ok(new_contacts) => {
                    report.customers += batch.rows.len() as u64;
                    report.contacts += new_contacts;
                    break;
                }
                Err(StoreError::BatchRow { row, source }) => {
                    batch.rows.remove(row);
                    let first = batch.lines.remove(row);
                    let problem = match *source {
                        StoreError::PhoneTaken { index } => {
                            format!("phones[{index}].number: owned by another customer")
                        }
                        other => other.to_string(),
                    };
                    report.rejected.push((first, problem));
                    if self.on_error == OnError::Abort {
                        batch.rows.clear();
                        batch.lines.clear();
                        batch.ids.clear();
                        return Ok(false);
                    }
                }
                Err(e) => return Err(anyhow::Error::new(e).context("a batch failed to commit")),
            }
        }
        if last_line > 0 {
            write_checkpoint(&self.checkpoint, last_line)?;
        }
        batch.rows.clear();
        batch.lines.clear();
        batch.ids.clear();
        Ok(true)
    }
}

fn read_checkpoint(path: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .with_context(|| format!("checkpoint {} is not a line number", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Written to a temporary file and renamed, so a crash leaves the old or
/// the new checkpoint, never a torn one.
fn write_checkpoint(path: &Path, line: u64) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    writeln!(f, "{line}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Records as they appear in the files.

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CustomerRecord {
    customer_id: String,
    name: String,
    form_of_address: String,
    locale: String,
    language: String,
    dialect: String,
    region: String,
    city: String,
    time_zone: String,
    age_band: String,
    occupation: String,
    assets: i64,
    contribution: i64,
    potential_value: i64,
    segment: String,
    phones: Vec<PhoneRecord>,
    tags: Vec<TagRecord>,
    contacts: Vec<ContactRecord>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct PhoneRecord {
    number: String,
    label: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct TagRecord {
    /// `caution`, `interest`, ... (TagKind without its prefix).
    kind: String,
    text: String,
    author: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ContactRecord {
    contact_id: String,
    channel: String,
    direction: String,
    /// RFC 3339.
    started_at: String,
    ivr_selection: String,
    queue_wait_s: u32,
    handle_s: u32,
    agent_id: String,
    outcome: String,
    complaint: bool,
    escalation_threat: bool,
    csat: u32,
    solutions_offered: u32,
    solutions_rejected: u32,
    compensation_asked: bool,
    compensation_granted: bool,
    notes: String,
}

/// A protobuf enum from its short lowercase name (`voice` for
/// CHANNEL_VOICE); `None` for an unknown one (empty is unspecified).
fn enum_value(prefix: &str, name: &str, parse: impl Fn(&str) -> Option<i32>) -> Option<i32> {
    if name.is_empty() {
        return Some(0);
    }
    // Built on the stack: this runs three times per contact, and a
    // heap-allocated name each time showed in the import's profile.
    let mut buf = [0_u8; 64];
    let len = prefix.len() + 1 + name.len();
    let out = buf.get_mut(..len)?;
    out[..prefix.len()].copy_from_slice(prefix.as_bytes());
    out[prefix.len()] = b'_';
    out[prefix.len() + 1..].copy_from_slice(name.as_bytes());
    out.make_ascii_uppercase();
    parse(std::str::from_utf8(out).ok()?)
}

fn to_pb_customer(r: &CustomerRecord) -> Result<pb::Customer, String> {
    let tags = r
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = enum_value("TAG_KIND", &t.kind, |s| {
                pb::TagKind::from_str_name(s).map(|k| k as i32)
            })
            .ok_or_else(|| format!("customer.tags[{i}].kind: unknown tag kind"))?;
            Ok(pb::CommunicationTag {
                kind,
                text: t.text.clone(),
                author: t.author.clone(),
                ..Default::default()
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(pb::Customer {
        customer_id: r.customer_id.clone(),
        name: r.name.clone(),
        form_of_address: r.form_of_address.clone(),
        locale: r.locale.clone(),
        language: r.language.clone(),
        dialect: r.dialect.clone(),
        region: r.region.clone(),
        city: r.city.clone(),
        time_zone: r.time_zone.clone(),
        age_band: r.age_band.clone(),
        occupation: r.occupation.clone(),
        assets: r.assets,
        contribution: r.contribution,
        potential_value: r.potential_value,
        segment: r.segment.clone(),
        phones: r
            .phones
            .iter()
            .map(|p| pb::Phone {
                number: p.number.clone(),
                label: p.label.clone(),
            })
            .collect(),
        tags,
        ..Default::default()
    })
}

/// Takes the record by value: its strings move into the message.
fn to_pb_contact(r: ContactRecord) -> Result<pb::ContactRecord, String> {
    let channel = enum_value("CHANNEL", &r.channel, |s| {
        pb::Channel::from_str_name(s).map(|v| v as i32)
    })
    .ok_or("contact.channel: unknown channel")?;
    let direction = enum_value("DIRECTION", &r.direction, |s| {
        pb::Direction::from_str_name(s).map(|v| v as i32)
    })
    .ok_or("contact.direction: unknown direction")?;
    let outcome = enum_value("CONTACT_OUTCOME", &r.outcome, |s| {
        pb::ContactOutcome::from_str_name(s).map(|v| v as i32)
    })
    .ok_or("contact.outcome: unknown outcome")?;
    let started_at = if r.started_at.is_empty() {
        None
    } else {
        let t = DateTime::parse_from_rfc3339(&r.started_at)
            .map_err(|_| "contact.started_at: not an RFC 3339 time".to_owned())?;
        Some(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        })
    };
    Ok(pb::ContactRecord {
        contact_id: r.contact_id,
        channel,
        direction,
        started_at,
        ivr_selection: r.ivr_selection,
        queue_wait_s: r.queue_wait_s,
        handle_s: r.handle_s,
        agent_id: r.agent_id,
        outcome,
        complaint: r.complaint,
        escalation_threat: r.escalation_threat,
        csat: r.csat,
        solutions_offered: r.solutions_offered,
        solutions_rejected: r.solutions_rejected,
        compensation_asked: r.compensation_asked,
        compensation_granted: r.compensation_granted,
        notes: r.notes,
    })
}

/// Validates a whole customer; problems carry the line each came from.
fn validate(
    record: CustomerRecord,
    line: u64,
    contact_lines: &[u64],
    region: Region,
    now: DateTime<Utc>,
) -> Result<ImportCustomer, Vec<(u64, String)>> {
    let field = |e: rapport_kit::validate::FieldError| format!("{}: {}", e.field, e.problem);
    let customer = to_pb_customer(&record)
        .and_then(|c| rapport_profile::input::customer(&c, region, now).map_err(field))
        .map_err(|p| vec![(line, p)])?;
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut contacts = Vec::with_capacity(record.contacts.len());
    for (i, c) in record.contacts.into_iter().enumerate() {
        let at = contact_lines.get(i).copied().unwrap_or(line);
        match to_pb_contact(c)
            .and_then(|pb| rapport_profile::input::contact(&pb, now).map_err(field))
        {
            Ok(contact) if seen.insert(contact.contact_id.clone()) => contacts.push(contact),
            Ok(_) => problems.push((at, format!("contacts[{i}].contact_id: repeated"))),
            Err(p) => problems.push((at, format!("contacts[{i}]: {p}"))),
        }
    }
    if problems.is_empty() {
        Ok(ImportCustomer { customer, contacts })
    } else {
        Err(problems)
    }
}

/// One row of the CSV form: the columns of every record kind; each kind
/// reads its own.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CsvRow {
    record: String,
    customer_id: String,
    name: String,
    form_of_address: String,
    locale: String,
    language: String,
    dialect: String,
    region: String,
    city: String,
    time_zone: String,
    age_band: String,
    occupation: String,
    assets: Option<i64>,
    contribution: Option<i64>,
    potential_value: Option<i64>,
    segment: String,
    number: String,
    label: String,
    kind: String,
    text: String,
    author: String,
    contact_id: String,
    channel: String,
    direction: String,
    started_at: String,
    ivr_selection: String,
    queue_wait_s: Option<u32>,
    handle_s: Option<u32>,
    agent_id: String,
    outcome: String,
    complaint: Option<bool>,
    escalation_threat: Option<bool>,
    csat: Option<u32>,
    notes: String,
}

// One reader per import: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Reader<R: std::io::BufRead> {
    Jsonl {
        input: R,
        line: u64,
        buf: String,
        region: Region,
        now: DateTime<Utc>,
    },
    Csv {
        rows: csv::DeserializeRecordsIntoIter<R, CsvRow>,
        /// A customer row read ahead (line, row), or its parse error.
        pending: Option<(u64, Result<CsvRow, String>)>,
        region: Region,
        now: DateTime<Utc>,
    },
}

impl<R: std::io::BufRead> Reader<R> {
    fn new(format: Format, input: R, region: Region, now: DateTime<Utc>) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Jsonl => Self::Jsonl {
                input,
                line: 0,
                buf: String::new(),
                region,
                now,
            },
            Format::Csv => Self::Csv {
                rows: csv::ReaderBuilder::new()
                    .trim(csv::Trim::All)
                    .from_reader(input)
                    .into_deserialize(),
                pending: None,
                region,
                now,
            },
        })
    }

    /// The next customer, with the bytes read so far; `None` at the end.
    fn next_customer(&mut self, bytes: &mut u64) -> anyhow::Result<Option<Parsed>> {
        match self {
            Self::Jsonl {
                input,
                line,
                buf,
                region,
                now,
            } => loop {
                buf.clear();
                let n = input.read_line(buf)?;
                if n == 0 {
                    return Ok(None);
                }
                *bytes += n as u64;
                *line += 1;
                if buf.trim().is_empty() {
                    continue;
                }
                let result = match serde_json::from_str::<CustomerRecord>(buf) {
                    // serde's message names the field and column, not the value.
                    Err(e) => Err(vec![(*line, format!("not a customer record: {e}"))]),
                    Ok(record) => validate(record, *line, &[], *region, *now),
                };
                return Ok(Some(Parsed {
                    first_line: *line,
                    last_line: *line,
                    result,
                }));
            },
            Self::Csv {
                rows,
                pending,
                region,
                now,
            } => {
                let read = |rows: &mut csv::DeserializeRecordsIntoIter<R, CsvRow>| {
                    let position = rows.reader().position().clone();
                    rows.next().map(|row| {
                        (
                            position.line(),
                            row.map_err(|e| format!("not a valid row: {}", csv_problem(&e))),
                        )
                    })
                };
                let Some((first, head)) = pending.take().or_else(|| read(rows)) else {
                    return Ok(None);
                };
                let mut problems = Vec::new();
                let mut record = CustomerRecord::default();
                let mut contact_lines = Vec::new();
                match head {
                    Ok(row) if row.record == "customer" => record = customer_of(row),
                    Ok(row) => problems.push((
                        first,
                        format!("record {:?} before any customer row", row.record),
                    )),
                    Err(p) => problems.push((first, p)),
                }
                let mut last = first;
                // The customer's rows run until the next customer row.
                while let Some((line, row)) = read(rows) {
                    match row {
                        Ok(row) if row.record == "customer" => {
                            *pending = Some((line, Ok(row)));
                            break;
                        }
                        Ok(row) if row.customer_id != record.customer_id => problems.push((
                            line,
                            "customer_id: differs from the customer row above".into(),
                        )),
                        Ok(row) => match row.record.as_str() {
                            "phone" => record.phones.push(PhoneRecord {
                                number: row.number,
                                label: row.label,
                            }),
                            "tag" => record.tags.push(TagRecord {
                                kind: row.kind,
                                text: row.text,
                                author: row.author,
                            }),
                            "contact" => {
                                contact_lines.push(line);
                                record.contacts.push(contact_of(row));
                            }
                            other => problems.push((line, format!("record: unknown {other:?}"))),
                        },
                        Err(p) => problems.push((line, p)),
                    }
                    last = line;
                }
                let result = if problems.is_empty() {
                    validate(record, first, &contact_lines, *region, *now)
                } else {
                    Err(problems)
                };
                *bytes = rows.reader().position().byte();
                Ok(Some(Parsed {
                    first_line: first,
                    last_line: last,
                    result,
                }))
            }
        }
    }
}

/// A CSV error without the offending field's content.
fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(i) => format!("column {} has a value of the wrong type", i + 1),
            None => "a value of the wrong type".into(),
        },
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of columns".into(),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".into(),
        _ => "unreadable".into(),
    }
}

fn customer_of(r: CsvRow) -> CustomerRecord {
    CustomerRecord {
        customer_id: r.customer_id,
        name: r.name,
        form_of_address: r.form_of_address,
        locale: r.locale,
        language: r.language,
        dialect: r.dialect,
        region: r.region,
        city: r.city,
        time_zone: r.time_zone,
        age_band: r.age_band,
        occupation: r.occupation,
        assets: r.assets.unwrap_or(0),
        contribution: r.contribution.unwrap_or(0),
        potential_value: r.potential_value.unwrap_or(0),
        segment: r.segment,
        ..CustomerRecord::default()
    }
}

fn contact_of(r: CsvRow) -> ContactRecord {
    ContactRecord {
        contact_id: r.contact_id,
        channel: r.channel,
        direction: r.direction,
        started_at: r.started_at,
        ivr_selection: r.ivr_selection,
        queue_wait_s: r.queue_wait_s.unwrap_or(0),
        handle_s: r.handle_s.unwrap_or(0),
        agent_id: r.agent_id,
        outcome: r.outcome,
        complaint: r.complaint.unwrap_or(false),
        escalation_threat: r.escalation_threat.unwrap_or(false),
        csat: r.csat.unwrap_or(0),
        notes: r.notes,
        ..ContactRecord::default()
    }
}

// ---------------------------------------------------------------------------
// Sample data.

/// Writes `customers` JSONL customers with `contacts` contacts each; every
/// `bad_every`th has an invalid phone (0: none).
pub fn generate(path: &Path, customers: u64, contacts: u32, bad_every: u64) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let base = Utc::now() - chrono::Duration::days(1);
    let segments = ["retail", "private-banking", "sme", "wealth"];
    let channels = ["voice", "chat", "email", "voice", "social"];
    let outcomes = [
        "resolved",
        "resolved",
        "unresolved",
        "abandoned",
        "escalated",
    ];
    for i in 0..customers {
        let bad = bad_every > 0 && (i + 1) % bad_every == 0;
        let phone = if bad {
            "not-a-phone".to_owned()
        } else {
            format!("+86139{i:08}")
        };
        write!(
            out,
            r#"{{"customer_id":"C{i:09}","name":"Customer {i}","language":"zh","city":"Xiamen","time_zone":"Asia/Shanghai","segment":"{}","assets":{},"phones":[{{"number":"{phone}","label":"mobile"}}],"tags":[{{"kind":"interest","text":"tea"}}],"contacts":["#,
            segments[(i % 4) as usize],
            (i % 100) * 100_000,
        )?;
        for k in 0..u64::from(contacts) {
            let at = base - chrono::Duration::hours(i64::try_from(k * 37 + i % 13).unwrap_or(0));
            let sep = if k == 0 { "" } else { "," };
            write!(
                out,
                r#"{sep}{{"contact_id":"k{k}","channel":"{}","direction":"{}","started_at":"{}","queue_wait_s":{},"handle_s":{},"agent_id":"A-{}","outcome":"{}","complaint":{},"csat":{}}}"#,
                channels[((i + k) % 5) as usize],
                if (i + k) % 7 == 0 {
                    "outbound"
                } else {
                    "inbound"
                },
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                (i + k) % 90,
                60 + (i * 7 + k) % 600,
                (i + k) % 50,
                outcomes[((i + k) % 5) as usize],
                (i + k) % 17 == 0,
                1 + (i + k) % 5,
            )?;
        }
        writeln!(out, "]}}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, file: &str, on_error: OnError, batch: u32) -> Args {
        Args {
            file: dir.join(file),
            database_url: format!("sqlite://{}", dir.join("profile.db").display()),
            format: None,
            batch,
            on_error,
            checkpoint: None,
            default_region: Region::CN,
            generate: None,
            contacts: 3,
            bad_every: 0,
        }
    }

    async fn profile(dir: &Path, id: &str) -> Option<rapport_profile::model::Profile> {
        let url = format!("sqlite://{}", dir.join("profile.db").display());
        let store = Backend::connect(&url, PoolOptions::default())
            .await
            .expect("opens");
        let p = store.get_profile(id, Utc::now()).await.ok();
        store.close().await;
        p
    }

    #[tokio::test]
    async fn a_generated_file_with_bad_rows_is_imported_skipping_them_by_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = args(dir.path(), "customers.jsonl", OnError::Skip, 7);
        generate(&a.file, 50, 3, 10).expect("generate");
        // A line that is not JSON, and a customer with a bad contact.
        let mut text = std::fs::read_to_string(&a.file).expect("read");
        text.push_str("{not json\n");
        text.push_str(
            r#"{"customer_id":"C-BADCONTACT","contacts":[{"contact_id":"k1","channel":"pigeon","direction":"inbound","started_at":"2025-01-01T00:00:00Z"}]}"#,
        );
        text.push('\n');
        std::fs::write(&a.file, text).expect("write");

        let report = import(&a, false).await.expect("import");
        assert_eq!(report.customers, 45);
        assert_eq!(report.contacts, 135);
        let lines: Vec<u64> = report.rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [10, 20, 30, 40, 50, 51, 52]);
        assert!(
            report.rejected[0]
                .1
                .starts_with("customer.phones[0].number:")
        );
        assert!(report.rejected[6].1.contains("contact.channel"));
        assert!(
            report
                .rejected
                .iter()
                .all(|(_, p)| !p.contains("not-a-phone")),
            "values never appear in reports"
        );
        assert!(profile(dir.path(), "C000000009").await.is_none(), "line 10");
        let p = profile(dir.path(), "C000000008").await.expect("imported");
        assert_eq!(p.summary.total_contacts, 3);
        assert!(
            profile(dir.path(), "C-BADCONTACT").await.is_none(),
            "never half a customer"
        );
        assert_eq!(
            read_checkpoint(&dir.path().join("customers.jsonl.checkpoint")).ok(),
            Some(52)
        );

        // A rerun resumes after the checkpoint: nothing left to do.
        let again = import(&a, false).await.expect("rerun");
        assert_eq!(again.resumed_after, 52);
        assert_eq!(again.customers, 0);
    }

    #[tokio::test]
    async fn abort_stops_before_the_bad_rows_batch_and_a_rerun_resumes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = args(dir.path(), "customers.jsonl", OnError::Abort, 4);
        generate(&a.file, 20, 2, 10).expect("generate");
        let err = import(&a, false).await.expect_err("aborts");
        assert!(err.to_string().contains("resume after line 8"), "{err:#}");
        assert!(
            profile(dir.path(), "C000000007").await.is_some(),
            "batch 2 committed"
        );
        assert!(
            profile(dir.path(), "C000000008").await.is_none(),
            "batch 3 not"
        );

        // Fix line 10 and rerun: it resumes after line 8.
        let text = std::fs::read_to_string(&a.file).expect("read");
        let fixed = text.replacen("not-a-phone", "+8613700000001", 1);
        std::fs::write(&a.file, fixed.replace("not-a-phone", "+8613700000002")).expect("write");
        let report = import(&a, false).await.expect("resumes");
        assert_eq!(report.resumed_after, 8);
        assert_eq!(report.customers, 12);
        assert!(profile(dir.path(), "C000000019").await.is_some());
    }

    #[tokio::test]
    async fn csv_rows_group_into_customers_and_a_taken_phone_rejects_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = args(dir.path(), "customers.csv", OnError::Skip, 100);
        std::fs::write(
            &a.file,
            "record,customer_id,name,segment,assets,number,label,kind,text,contact_id,channel,direction,started_at,outcome,csat,complaint\n\
             customer,C-1,Chen,private-banking,8000000,,,,,,,,,,,\n\
             phone,C-1,,,,138 0013 8000,mobile,,,,,,,,,\n\
             tag,C-1,,,,,,caution,threatens media,,,,,,,\n\
             contact,C-1,,,,,,,,k1,voice,inbound,2025-01-01T10:00:00Z,resolved,5,false\n\
             contact,C-1,,,,,,,,k2,voice,inbound,2025-01-02T10:00:00Z,unresolved,,true\n\
             customer,C-2,Lin,retail,0,,,,,,,,,,,\n\
             phone,C-2,,,,13800138000,,,,,,,,,,\n\
             customer,C-3,Wu,retail,0,,,,,,,,,,,\n\
             contact,C-3,,,,,,,,k1,voice,inbound,2025-01-01T10:00:00Z,resolved,9,false\n\
             customer,C-4,Xu,retail,0,,,,,,,,,,,\n",
        )
        .expect("write");
        let report = import(&a, false).await.expect("import");
        assert_eq!(report.customers, 2, "C-1 and C-4");
        assert_eq!(report.contacts, 2);
        let lines: Vec<u64> = report.rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [7, 10], "{:?}", report.rejected);
        assert!(
            report.rejected[0]
                .1
                .contains("phones[0].number: owned by another")
        );
        assert!(report.rejected[1].1.contains("contact.csat"));
        let p = profile(dir.path(), "C-1").await.expect("imported");
        assert_eq!(p.customer.phones[0].number, "+8613800138000");
        assert_eq!(p.customer.tags.len(), 1);
        assert_eq!(p.summary.total_contacts, 2);
        assert_eq!(p.summary.waits_before_complaints.len(), 0);
        assert!(profile(dir.path(), "C-2").await.is_none());
    }
}
