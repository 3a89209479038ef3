#include "tests/e2e/trainer_calls.h"

namespace gradwatch::e2e {

namespace v1 = ::gradwatch::v1;

grpc::Status SubmitJob(TrainerStub& stub, const v1::JobSpec& spec,
                       v1::Job* job) {
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  return stub.SubmitJob(&context, request, job);
}

grpc::Status GetJob(TrainerStub& stub, const std::string& id, v1::Job* job) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(id);
  return stub.GetJob(&context, request, job);
}

grpc::Status CancelJob(TrainerStub& stub, const std::string& id, v1::Job* job) {
  grpc::ClientContext context;
  v1::CancelJobRequest request;
  request.set_job_id(id);
  return stub.CancelJob(&context, request, job);
}

grpc::Status GetModel(TrainerStub& stub, const std::string& id,
                      v1::Model* model) {
  grpc::ClientContext context;
  v1::GetModelRequest request;
  request.set_job_id(id);
  return stub.GetModel(&context, request, model);
}

grpc::Status WatchAll(TrainerStub& stub, const std::string& id,
                      uint64_t from_step, std::vector<v1::JobEvent>* events) {
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(id);
  request.set_from_step(from_step);
  auto reader = stub.WatchJob(&context, request);
  v1::JobEvent event;
  while (reader->Read(&event)) events->push_back(event);
  return reader->Finish();
}

}  // namespace gradwatch::e2e
