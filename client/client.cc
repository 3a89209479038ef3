#include "client/client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"

namespace gradwatch::client {
namespace {

namespace v1 = ::gradwatch::v1;
using google::protobuf::internal::WireFormatLite;

constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";

// gRPC and Abseil share the canonical code numbering.
absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// grpc.health.v1 has no C++ client in Debian's gRPC; its two messages are
// one field each, written and read here with protobuf's wire format.
std::string EncodeHealthCheckRequest(const std::string& service) {
  std::string bytes;
  if (service.empty()) return bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  WireFormatLite::WriteString(1, service, &coded);
  coded.Trim();
  return bytes;
}

absl::StatusOr<ServingStatus> DecodeHealthCheckResponse(
    const std::string& bytes) {
  google::protobuf::io::CodedInputStream coded(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  uint32_t status = 0;
  while (uint32_t tag = coded.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 1 &&
        WireFormatLite::GetTagWireType(tag) ==
            WireFormatLite::WIRETYPE_VARINT) {
      if (!coded.ReadVarint32(&status)) break;
    } else if (!WireFormatLite::SkipField(&coded, tag)) {
      return absl::DataLossError("malformed grpc.health.v1 response");
    }
  }
  if (status > static_cast<uint32_t>(ServingStatus::kServiceUnknown)) {
    return ServingStatus::kUnknown;
  }
  return static_cast<ServingStatus>(status);
}

}  // namespace

const char* ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case ServingStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const std::string& target, const ClientOptions& options) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(target, options.credentials != nullptr
                                      ? options.credentials
                                      : grpc::InsecureChannelCredentials());
  auto client = std::make_unique<Client>(channel, target, options);
  // Wait for READY, but give up at the first failed attempt: a refused
  // connection is reported at once, not after the whole timeout.
  const auto deadline =
      absl::ToChronoTime(absl::Now() + options.connect_timeout);
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY &&
         state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
         state != GRPC_CHANNEL_SHUTDOWN &&
         channel->WaitForStateChange(state, deadline)) {
    state = channel->GetState(/*try_to_connect=*/true);
  }
  if (state == GRPC_CHANNEL_READY) return client;
  // The channel keeps the last connection error to itself; a call made
  // without wait-for-ready fails at once and carries it ("Connection
  // refused", "DNS resolution failed", ...).
  std::string reason = absl::StrCat(
      "not connected within ", absl::FormatDuration(options.connect_timeout));
  if (state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    ClientOptions probe_options = options;
    probe_options.rpc_timeout = std::min(options.rpc_timeout, absl::Seconds(2));
    Client probe(channel, target, probe_options);
    absl::StatusOr<ServingStatus> health = probe.CheckHealth("");
    if (!health.ok() &&
        health.status().code() == absl::StatusCode::kUnavailable) {
      reason = std::string(health.status().message());
    }
  }
  return absl::UnavailableError(
      absl::StrCat("cannot reach gradwatch server at ", target, ": ", reason));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, std::string target,
               const ClientOptions& options)
    : channel_(std::move(channel)),
      stub_(v1::Trainer::NewStub(channel_)),
      target_(std::move(target)),
      options_(options) {}

void Client::Prepare(grpc::ClientContext* context, bool unary) const {
  // Per call rather than as call credentials: gRPC sends those over TLS
  // only, and a plaintext loopback server may want tokens too.
  if (!options_.token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.token));
  }
  if (unary) {
    context->set_deadline(
        absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  }
}

absl::StatusOr<v1::Job> Client::SubmitJob(const v1::JobSpec& spec) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/true);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::Job job;
  absl::Status status = ToAbslStatus(stub_->SubmitJob(&context, request, &job));
  if (!status.ok()) return status;
  return job;
}

absl::StatusOr<v1::Job> Client::GetJob(const std::string& job_id) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/true);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  absl::Status status = ToAbslStatus(stub_->GetJob(&context, request, &job));
  if (!status.ok()) return status;
  return job;
}

absl::StatusOr<std::vector<v1::Job>> Client::ListJobs(v1::JobState state) {
  std::vector<v1::Job> jobs;
  std::string page_token;
  do {
    grpc::ClientContext context;
    Prepare(&context, /*unary=*/true);
    v1::ListJobsRequest request;
    request.set_state(state);
    request.set_page_token(page_token);
    v1::ListJobsResponse response;
    absl::Status status =
        ToAbslStatus(stub_->ListJobs(&context, request, &response));
    if (!status.ok()) return status;
    for (v1::Job& job : *response.mutable_jobs())
      jobs.push_back(std::move(job));
    if (response.next_page_token() == page_token) break;  // no progress
    page_token = response.next_page_token();
  } while (!page_token.empty());
  return jobs;
}

absl::StatusOr<v1::Job> Client::CancelJob(const std::string& job_id) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/true);
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  absl::Status status = ToAbslStatus(stub_->CancelJob(&context, request, &job));
  if (!status.ok()) return status;
  return job;
}

absl::StatusOr<v1::PredictResponse> Client::Predict(
    const std::string& job_id, const std::vector<v1::Example>& inputs) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/true);
  v1::PredictRequest request;
  request.set_job_id(job_id);
  for (const v1::Example& input : inputs) *request.add_inputs() = input;
  v1::PredictResponse response;
  absl::Status status =
      ToAbslStatus(stub_->Predict(&context, request, &response));
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<v1::Model> Client::GetModel(const std::string& job_id) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/true);
  v1::GetModelRequest request;
  request.set_job_id(job_id);
  v1::Model model;
  absl::Status status =
      ToAbslStatus(stub_->GetModel(&context, request, &model));
  if (!status.ok()) return status;
  return model;
}

template <typename Reader>
absl::Status Client::ReadStream(Reader* reader, grpc::ClientContext* context,
                                const EventHandler& on_event) {
  v1::JobEvent event;
  while (reader->Read(&event)) {
    if (!on_event(event)) {
      context->TryCancel();
      while (reader->Read(&event)) {
      }
      reader->Finish();
      return absl::OkStatus();
    }
  }
  return ToAbslStatus(reader->Finish());
}

absl::Status Client::Train(const v1::JobSpec& spec,
                           const EventHandler& on_event) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/false);
  v1::TrainRequest request;
  *request.mutable_spec() = spec;
  auto reader = stub_->Train(&context, request);
  return ReadStream(reader.get(), &context, on_event);
}

absl::Status Client::WatchJob(const std::string& job_id, uint64_t from_step,
                              const EventHandler& on_event) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_from_step(from_step);
  bool received = false;
  {
    grpc::ClientContext context;
    Prepare(&context, /*unary=*/false);
    auto reader = stub_->WatchJobBatches(&context, request);
    while (true) {
      // Each message in an arena of its own: its hundreds of events then
      // cost a few large allocations rather than several each, which is
      // most of what parsing them costs.
      google::protobuf::ArenaOptions options;
      options.start_block_size = 64 << 10;
      options.max_block_size = 1 << 20;
      google::protobuf::Arena arena(options);
      auto* batch =
          google::protobuf::Arena::CreateMessage<v1::JobEventBatch>(&arena);
      if (!reader->Read(batch)) break;
      received = true;
      for (const v1::JobEvent& event : batch->events()) {
        if (!on_event(event)) {
          context.TryCancel();
          while (reader->Read(batch)) {
          }
          reader->Finish();
          return absl::OkStatus();
        }
      }
    }
    grpc::Status status = reader->Finish();
    // A server older than WatchJobBatches answers UNIMPLEMENTED before any
    // event: it still streams them one by one.
    if (received || status.error_code() != grpc::StatusCode::UNIMPLEMENTED) {
      return ToAbslStatus(status);
    }
  }
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/false);
  auto reader = stub_->WatchJob(&context, request);
  return ReadStream(reader.get(), &context, on_event);
}

absl::StatusOr<ServingStatus> Client::CheckHealth(const std::string& service) {
  grpc::GenericStub generic(channel_);
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/true);
  const std::string request_bytes = EncodeHealthCheckRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status call_status;
  generic.UnaryCall(&context, kHealthCheckMethod, grpc::StubOptions(), &request,
                    &response, [&](grpc::Status status) {
                      call_status = std::move(status);
                      done.Notify();
                    });
  done.WaitForNotification();
  if (!call_status.ok()) return ToAbslStatus(call_status);
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return absl::DataLossError("unreadable grpc.health.v1 response");
  }
  std::string bytes;
  for (const grpc::Slice& part : slices) {
    bytes.append(reinterpret_cast<const char*>(part.begin()), part.size());
  }
  return DecodeHealthCheckResponse(bytes);
}

}  // namespace gradwatch::client
