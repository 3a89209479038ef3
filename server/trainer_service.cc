#include "server/trainer_service.h"

#include <memory>
#include <string>
#include <utility>

#include "engine/spec_validation.h"
#include "server/status_util.h"
#include "server/watch_reactor.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Copies a result into the response and finishes the call.
template <typename T>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = std::move(*result);
  return FinishUnary(context, result.status());
}

}  // namespace

TrainerService::TrainerService(const ServerLimits& limits, JobManager* jobs,
                               JobObserver* observer, const Authenticator* auth)
    : limits_(limits), jobs_(jobs), observer_(observer), auth_(auth) {}

absl::Status TrainerService::AdmitSpec(const v1::JobSpec& spec) const {
  absl::Status valid = engine::ValidateJobSpec(spec);
  if (!valid.ok()) return valid;
  return CheckLimits(spec, limits_);
}

absl::StatusOr<Principal> TrainerService::Caller(
    const grpc::CallbackServerContext& context) const {
  if (auth_ == nullptr) return Principal::AnonymousAdmin();
  return auth_->Authenticate(context);
}

grpc::ServerUnaryReactor* TrainerService::SubmitJob(
    grpc::CallbackServerContext* context, const v1::SubmitJobRequest* request,
    v1::Job* response) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return FinishUnary(context, caller.status());
  absl::Status admitted = AdmitSpec(request->spec());
  if (!admitted.ok()) return FinishUnary(context, admitted);
  return FinishUnary(context, jobs_->Submit(request->spec(), caller->name),
                     response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TrainerService::WatchJob(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw) {
  return Watch(context, *raw, StreamFraming::kEventPerMessage);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TrainerService::WatchJobBatches(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw) {
  return Watch(context, *raw, StreamFraming::kBatched);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TrainerService::Watch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer& raw,
    StreamFraming framing) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return WatchReactor::Fail(ToGrpcStatus(caller.status()));
  v1::WatchJobRequest request;
  absl::Status parsed = WatchReactor::ParseRequest(raw, &request);
  if (!parsed.ok()) return WatchReactor::Fail(ToGrpcStatus(parsed));
  auto history = jobs_->History(request.job_id(), *caller);
  if (!history.ok()) return WatchReactor::Fail(ToGrpcStatus(history.status()));
  // Closing a watch never cancels the job: no cancel hook.
  return WatchReactor::Start(std::move(*history), request.from_step(), nullptr,
                             observer_, framing);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TrainerService::Train(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return WatchReactor::Fail(ToGrpcStatus(caller.status()));
  v1::TrainRequest request;
  absl::Status parsed = WatchReactor::ParseRequest(*raw, &request);
  if (!parsed.ok()) return WatchReactor::Fail(ToGrpcStatus(parsed));
  absl::Status admitted = AdmitSpec(request.spec());
  if (!admitted.ok()) return WatchReactor::Fail(ToGrpcStatus(admitted));
  auto job = jobs_->Submit(request.spec(), caller->name);
  if (!job.ok()) return WatchReactor::Fail(ToGrpcStatus(job.status()));
  auto history = jobs_->History(job->id());
  if (!history.ok()) return WatchReactor::Fail(ToGrpcStatus(history.status()));
  JobManager* jobs = jobs_;
  std::string job_id = job->id();
  return WatchReactor::Start(
      std::move(*history), /*from_step=*/0,
      [jobs, job_id] { (void)jobs->Cancel(job_id); }, observer_);
}

grpc::ServerUnaryReactor* TrainerService::GetJob(
    grpc::CallbackServerContext* context, const v1::GetJobRequest* request,
    v1::Job* response) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return FinishUnary(context, caller.status());
  return FinishUnary(context,
                     jobs_->Get(request->job_id(), /*with_spec=*/true, *caller),
                     response);
}

grpc::ServerUnaryReactor* TrainerService::ListJobs(
    grpc::CallbackServerContext* context, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return FinishUnary(context, caller.status());
  return FinishUnary(context, jobs_->List(*request, *caller), response);
}

grpc::ServerUnaryReactor* TrainerService::CancelJob(
    grpc::CallbackServerContext* context, const v1::CancelJobRequest* request,
    v1::Job* response) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return FinishUnary(context, caller.status());
  return FinishUnary(context, jobs_->Cancel(request->job_id(), *caller),
                     response);
}

grpc::ServerUnaryReactor* TrainerService::Predict(
    grpc::CallbackServerContext* context, const v1::PredictRequest* request,
    v1::PredictResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return FinishUnary(context, caller.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The request and response live until Finish; the forward pass runs
  // off gRPC's threads.
  blocking_work_.Post(
      [this, request, response, reactor, caller = std::move(*caller)] {
        absl::StatusOr<v1::PredictResponse> result =
            jobs_->Predict(*request, caller);
        if (result.ok()) *response = std::move(*result);
        reactor->Finish(ToGrpcStatus(result.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* TrainerService::GetModel(
    grpc::CallbackServerContext* context, const v1::GetModelRequest* request,
    v1::Model* response) {
  absl::StatusOr<Principal> caller = Caller(*context);
  if (!caller.ok()) return FinishUnary(context, caller.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  blocking_work_.Post(
      [this, request, response, reactor, caller = std::move(*caller)] {
        absl::StatusOr<v1::Model> result =
            jobs_->GetModel(request->job_id(), caller);
        if (result.ok()) *response = std::move(*result);
        reactor->Finish(ToGrpcStatus(result.status()));
      });
  return reactor;
}

}  // namespace gradwatch::server
