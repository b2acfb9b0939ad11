//! The gRPC surface of the outreach scheduler. Every RPC is part of the
//! outreach-scheduler issue and answers UNIMPLEMENTED until it lands.

use std::pin::Pin;

use rapport_proto as pb;
use tonic::{Request, Response, Status};

pub(crate) struct Outreach;

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "OutreachService.{rpc} is not implemented yet (outreach scheduler issue)"
    ))
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::outreach_service_server::OutreachService for Outreach {
    async fn schedule_callback(
        &self,
        _: Request<pb::ScheduleCallbackRequest>,
    ) -> Result<Response<pb::CareTask>, Status> {
        Err(pending("ScheduleCallback"))
    }
    async fn schedule_care(
        &self,
        _: Request<pb::ScheduleCareRequest>,
    ) -> Result<Response<pb::CareTask>, Status> {
        Err(pending("ScheduleCare"))
    }
    async fn cancel_care(
        &self,
        _: Request<pb::CancelCareRequest>,
    ) -> Result<Response<pb::CareTask>, Status> {
        Err(pending("CancelCare"))
    }
    async fn get_care_plan(
        &self,
        _: Request<pb::GetCarePlanRequest>,
    ) -> Result<Response<pb::CarePlan>, Status> {
        Err(pending("GetCarePlan"))
    }
    async fn list_due(
        &self,
        _: Request<pb::ListDueRequest>,
    ) -> Result<Response<pb::ListDueResponse>, Status> {
        Err(pending("ListDue"))
    }
    type WatchOutboundStream = Stream<pb::DialRequest>;
    async fn watch_outbound(
        &self,
        _: Request<pb::WatchOutboundRequest>,
    ) -> Result<Response<Self::WatchOutboundStream>, Status> {
        Err(pending("WatchOutbound"))
    }
    async fn ack_dial(
        &self,
        _: Request<pb::AckDialRequest>,
    ) -> Result<Response<pb::AckDialResponse>, Status> {
        Err(pending("AckDial"))
    }
    async fn record_outcome(
        &self,
        _: Request<pb::RecordOutcomeRequest>,
    ) -> Result<Response<pb::RecordOutcomeResponse>, Status> {
        Err(pending("RecordOutcome"))
    }
    async fn get_forecast(
        &self,
        _: Request<pb::GetForecastRequest>,
    ) -> Result<Response<pb::Forecast>, Status> {
        Err(pending("GetForecast"))
    }
    async fn rebuild_due_index(
        &self,
        _: Request<pb::RebuildDueIndexRequest>,
    ) -> Result<Response<pb::RebuildDueIndexResponse>, Status> {
        Err(pending("RebuildDueIndex"))
    }
}
