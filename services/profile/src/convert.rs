//! Stored records to wire messages. (Wire to domain goes through
//! `validate`, which also checks.)

use chrono::{DateTime, Utc};
use rapport_proto as pb;

use crate::model::{
    CampaignExposure, CareNote, Change, Contact, Customer, CustomerExport, Event, HistorySummary,
    Profile, Tag, WaitEvidence,
};

pub(crate) fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        // Below 2e9 even for a leap second, so it always fits.
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

pub(crate) fn profile(p: Profile) -> pb::ProfileView {
    pb::ProfileView {
        customer: Some(customer(p.customer)),
        summary: Some(summary(p.summary)),
    }
}

pub(crate) fn customer(c: Customer) -> pb::Customer {
    pb::Customer {
        customer_id: c.customer_id,
        name: c.name,
        form_of_address: c.form_of_address,
        locale: c.locale,
        language: c.language,
        dialect: c.dialect,
        region: c.region,
        city: c.city,
        time_zone: c.time_zone,
        age_band: c.age_band,
        occupation: c.occupation,
        assets: c.assets,
        contribution: c.contribution,
        potential_value: c.potential_value,
        segment: c.segment,
        declared_needs: c
            .declared_needs
            .into_iter()
            .map(|n| pb::NeedWeight {
                need: n.need as i32,
                weight: n.weight,
            })
            .collect(),
        public_influence: Some(pb::PublicInfluence {
            social_followers: c.public_influence.social_followers,
            media_presence: c.public_influence.media_presence,
        }),
        phones: c
            .phones
            .into_iter()
            .map(|p| pb::Phone {
                number: p.number,
                label: p.label,
            })
            .collect(),
        tags: c.tags.into_iter().map(tag).collect(),
        preferences: Some(pb::Preferences {
            preferred_agent_id: c.preferences.preferred_agent_id,
            dedicated_field_manager_id: c.preferences.dedicated_field_manager_id,
            preferred_channel: c
                .preferences
                .preferred_channel
                .map_or(pb::Channel::Unspecified as i32, |ch| ch as i32),
            contact_windows: c
                .preferences
                .contact_windows
                .into_iter()
                .map(|w| pb::ContactWindow {
                    days: w.days.into_iter().map(|d| d as i32).collect(),
                    start_minute: w.start_minute,
                    end_minute: w.end_minute,
                })
                .collect(),
            language: c.preferences.language,
        }),
        consent: Some(pb::Consent {
            care_calls: c.consent.care_calls,
            do_not_call: c.consent.do_not_call,
            do_not_call_source: c.consent.do_not_call_source,
            do_not_call_at: c.consent.do_not_call_at.map(timestamp),
        }),
        version: c.version,
        created_at: Some(timestamp(c.created_at)),
        updated_at: Some(timestamp(c.updated_at)),
    }
}

pub(crate) fn tag(t: Tag) -> pb::CommunicationTag {
    pb::CommunicationTag {
        tag_id: t.tag_id,
        kind: t.kind as i32,
        text: t.text,
        author: t.author,
        created_at: Some(timestamp(t.created_at)),
        expires_at: t.expires_at.map(timestamp),
    }
}

pub(crate) fn contact(c: Contact) -> pb::ContactRecord {
    pb::ContactRecord {
        contact_id: c.contact_id,
        channel: c.channel as i32,
        direction: c.direction as i32,
        started_at: Some(timestamp(c.started_at)),
        ivr_selection: c.ivr_selection,
        queue_wait_s: c.queue_wait_s,
        handle_s: c.handle_s,
        agent_id: c.agent_id,
        outcome: c
            .outcome
            .map_or(pb::ContactOutcome::Unspecified as i32, |o| o as i32),
        complaint: c.complaint,
        escalation_threat: c.escalation_threat,
        csat: c.csat.map_or(0, u32::from),
        solutions_offered: c.solutions_offered,
        solutions_rejected: c.solutions_rejected,
        compensation_asked: c.compensation_asked,
        compensation_granted: c.compensation_granted,
        notes: c.notes,
    }
}

fn wait(w: WaitEvidence) -> pb::WaitEvidence {
    pb::WaitEvidence {
        wait_s: w.wait_s,
        complaint: w.complaint,
        abandoned: w.abandoned,
        at: Some(timestamp(w.at)),
    }
}

pub(crate) fn event(e: Event) -> pb::CustomerEvent {
    pb::CustomerEvent {
        event_id: e.event_id,
        kind: e.kind,
        detail: e.detail,
        occurred_at: Some(timestamp(e.occurred_at)),
    }
}

pub(crate) fn campaign(c: CampaignExposure) -> pb::CampaignExposure {
    pb::CampaignExposure {
        campaign_id: c.campaign_id,
        title: c.title,
        channel: c.channel as i32,
        sent_at: Some(timestamp(c.sent_at)),
    }
}

fn summary(s: HistorySummary) -> pb::HistorySummary {
    pb::HistorySummary {
        contacts_7d: s.contacts_7d,
        contacts_30d: s.contacts_30d,
        contacts_90d: s.contacts_90d,
        total_contacts: s.total_contacts,
        complaints_90d: s.complaints_90d,
        escalation_threats_90d: s.escalation_threats_90d,
        abandoned_90d: s.abandoned_90d,
        solutions_rejected_90d: s.solutions_rejected_90d,
        compensation_asked_90d: s.compensation_asked_90d,
        mean_handle_s_90d: s.mean_handle_s_90d,
        waits_before_complaints: s.waits_before_complaints.into_iter().map(wait).collect(),
        last_contact_at: s.last_contact_at.map(timestamp),
        recent_contacts: s.recent_contacts.into_iter().map(contact).collect(),
        recent_events: s.recent_events.into_iter().map(event).collect(),
        recent_campaigns: s.recent_campaigns.into_iter().map(campaign).collect(),
        affinity_agent_ids: s.affinity_agent_ids,
        outbound_30d: s.outbound_30d,
        last_outbound_at: s.last_outbound_at.map(timestamp),
        last_complaint_at: s.last_complaint_at.map(timestamp),
        last_complaint_resolved: s.last_complaint_resolved,
    }
}

pub(crate) fn care_note(n: CareNote) -> pb::CareNote {
    pb::CareNote {
        note_id: n.note_id,
        customer_id: n.customer_id,
        contact_id: n.contact_id,
        author: n.author,
        text: n.text,
        topics: n.topics,
        added_tags: n.added_tags.into_iter().map(tag).collect(),
        created_at: Some(timestamp(n.created_at)),
    }
}

pub(crate) fn change(c: Change) -> pb::ProfileChange {
    pb::ProfileChange {
        // The change id is the token: resuming is `WHERE change_id > token`.
        resume_token: c.change_id.to_string(),
        customer_id: c.customer_id,
        kind: c.kind as i32,
        at: Some(timestamp(c.at)),
        ref_id: c.ref_id,
    }
}

pub(crate) fn export(x: CustomerExport) -> pb::CustomerExport {
    pb::CustomerExport {
        customer: Some(customer(x.customer)),
        contacts: x.contacts.into_iter().map(contact).collect(),
        care_notes: x.care_notes.into_iter().map(care_note).collect(),
        events: x.events.into_iter().map(event).collect(),
        campaigns: x.campaigns.into_iter().map(campaign).collect(),
    }
}
