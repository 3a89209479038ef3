#ifndef GRADWATCH_SERVER_TRAINER_SERVICE_H_
#define GRADWATCH_SERVER_TRAINER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "server/auth.h"
#include "server/job_manager.h"
#include "server/job_observer.h"
#include "server/limits.h"
#include "server/principal.h"
#include "server/task_runner.h"
#include "server/watch_reactor.h"

namespace gradwatch::server {

/// The gradwatch.v1.Trainer service on gRPC's callback API, over a
/// JobManager. Handlers never train or wait: record look-ups answer
/// inline, Predict and GetModel run on the service's TaskRunner, streams
/// are WatchReactors reading job histories. Every handler first asks the
/// Authenticator who calls, and reaches only the jobs that principal may
/// access. WatchJob, WatchJobBatches and Train are raw methods: they parse
/// their request themselves and write each event's bytes as the job's
/// history serialized them (WatchJobBatches several to a message). Thread-safe:
/// gRPC calls the handlers from its own threads concurrently.
class TrainerService final
    : public gradwatch::v1::Trainer::WithRawCallbackMethod_WatchJob<
          gradwatch::v1::Trainer::WithRawCallbackMethod_WatchJobBatches<
              gradwatch::v1::Trainer::WithRawCallbackMethod_Train<
                  gradwatch::v1::Trainer::CallbackService>>> {
 public:
  /// `jobs`, `observer` (told about streams; may be null) and `auth`
  /// (null: every caller is the anonymous admin) must outlive the service
  /// and every call it serves.
  TrainerService(const ServerLimits& limits, JobManager* jobs,
                 JobObserver* observer = nullptr,
                 const Authenticator* auth = nullptr);

  grpc::ServerUnaryReactor* SubmitJob(
      grpc::CallbackServerContext* context,
      const gradwatch::v1::SubmitJobRequest* request,
      gradwatch::v1::Job* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchJob(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchJobBatches(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Train(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const gradwatch::v1::GetJobRequest* request,
                                   gradwatch::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(
      grpc::CallbackServerContext* context,
      const gradwatch::v1::ListJobsRequest* request,
      gradwatch::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(
      grpc::CallbackServerContext* context,
      const gradwatch::v1::CancelJobRequest* request,
      gradwatch::v1::Job* response) override;
  grpc::ServerUnaryReactor* Predict(
      grpc::CallbackServerContext* context,
      const gradwatch::v1::PredictRequest* request,
      gradwatch::v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(
      grpc::CallbackServerContext* context,
      const gradwatch::v1::GetModelRequest* request,
      gradwatch::v1::Model* response) override;

 private:
  // The admission check every submitted spec goes through: the engine's
  // single validation point, then the server's limits.
  absl::Status AdmitSpec(const gradwatch::v1::JobSpec& spec) const;
  // WatchJob and WatchJobBatches, which differ only in their framing.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer& raw,
      StreamFraming framing);
  // The principal making the call, or UNAUTHENTICATED.
  absl::StatusOr<Principal> Caller(
      const grpc::CallbackServerContext& context) const;

  const ServerLimits limits_;
  JobManager* const jobs_;
  JobObserver* const observer_;
  const Authenticator* const auth_;
  TaskRunner blocking_work_{2};
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_TRAINER_SERVICE_H_
