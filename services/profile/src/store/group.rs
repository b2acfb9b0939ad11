//! Group commit of recorded contacts, for SQLite's single writer.
//!
//! Every completed call records a contact, so at a thousand calls a second
//! the writer commits a thousand times a second, each commit an fsync of
//! the WAL (`synchronous=FULL`) and a share of the checkpoints. The
//! committer instead takes every contact waiting when the writer frees up
//! and writes them in one transaction: a contact that fails (unknown
//! customer) is rolled back alone and answered with its error, the others
//! commit together, and nobody is answered before the commit that holds
//! their write. Each RPC stays atomic; what is shared is the fsync. (The
//! SQLite committer, `commit_contacts` in `store::sqlite`, writes a batch
//! on a connection of its own, `store::direct::ContactWriter`.)

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use crate::model::Contact;

/// Contacts written in one transaction at most: bounds how long the
/// writer is held and how much one failed commit takes down with it.
pub(crate) const MAX_BATCH: usize = 64;

/// One contact to record, and where its result goes.
pub(crate) struct Job {
    pub customer_id: String,
    pub contact: Contact,
    pub now: DateTime<Utc>,
    pub reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The handle writers send their contacts through.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// A handle and the queue its committer task drains.
    pub(crate) fn channel() -> (Self, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        (Self { jobs }, rx)
    }

    /// Records one contact through the committer; see `Store::record_contact`.
    pub(crate) async fn record_contact(
        &self,
        customer_id: &str,
        contact: &Contact,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            customer_id: customer_id.to_owned(),
            contact: contact.clone(),
            now,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

/// Takes the next batch: waits for one job, then whatever else is already
/// queued, up to [`MAX_BATCH`]. `None` once every handle is gone.
pub(crate) async fn next_batch(rx: &mut mpsc::Receiver<Job>) -> Option<Vec<Job>> {
    let first = rx.recv().await?;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// What a contact whose own writes succeeded is told when the commit that
/// held them failed: the same kind of error, so callers retry (or not) as
/// they would have.
pub(crate) fn commit_failed(cause: &StoreError) -> StoreError {
    let e = sqlx::Error::Protocol(format!("the group commit failed: {cause}"));
    match cause {
        StoreError::Contention(_) => StoreError::Contention(e),
        StoreError::Unavailable(_) => StoreError::Unavailable(e),
        _ => StoreError::Database(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> (Job, oneshot::Receiver<Result<bool, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            customer_id: id.into(),
            contact: Contact {
                contact_id: id.into(),
                channel: crate::model::Channel::Voice,
                direction: crate::model::Direction::Inbound,
                started_at: DateTime::UNIX_EPOCH,
                ivr_selection: String::new(),
                queue_wait_s: 0,
                handle_s: 0,
                agent_id: String::new(),
                outcome: None,
                complaint: false,
                escalation_threat: false,
                csat: None,
                solutions_offered: 0,
                solutions_rejected: 0,
                compensation_asked: false,
                compensation_granted: false,
                notes: String::new(),
            },
            now: DateTime::UNIX_EPOCH,
            reply,
        };
        (job, rx)
    }

    #[tokio::test]
    async fn a_batch_is_what_is_queued_up_to_the_limit() {
        let (handle, mut rx) = GroupCommit::channel();
        let mut answers = Vec::new();
        for i in 0..MAX_BATCH + 3 {
            let (j, a) = job(&format!("c{i}"));
            handle.jobs.send(j).await.unwrap();
            answers.push(a);
        }
        assert_eq!(next_batch(&mut rx).await.unwrap().len(), MAX_BATCH);
        assert_eq!(next_batch(&mut rx).await.unwrap().len(), 3);
        drop(handle);
        assert!(next_batch(&mut rx).await.is_none());
    }

    #[test]
    fn a_failed_commit_is_reported_as_the_same_kind_of_error() {
        let busy = StoreError::Contention(sqlx::Error::PoolTimedOut);
        assert!(matches!(commit_failed(&busy), StoreError::Contention(_)));
        let gone = StoreError::Unavailable(sqlx::Error::PoolClosed);
        assert!(matches!(commit_failed(&gone), StoreError::Unavailable(_)));
        let other = StoreError::Corrupt("x".into());
        assert!(matches!(commit_failed(&other), StoreError::Database(_)));
    }
}
