#ifndef GRADWATCH_CLIENT_CLIENT_H_
#define GRADWATCH_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/spec.pb.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "gradwatch/v1/trainer.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"

namespace gradwatch::client {

struct ClientOptions {
  /// How long Connect waits for the channel to become ready.
  absl::Duration connect_timeout = absl::Seconds(5);
  /// Deadline of each unary RPC (streams have none: a job may run long).
  absl::Duration rpc_timeout = absl::Seconds(30);
  /// How Connect secures the channel (see MakeChannelCredentials); null:
  /// plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  /// Sent as `authorization: Bearer TOKEN` with every call; empty: none.
  std::string token;
};

/// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum class ServingStatus {
  kUnknown = 0,
  kServing = 1,
  kNotServing = 2,
  kServiceUnknown = 3,
};

/// Receives each event of a stream; return false to stop reading (for
/// Train this cancels the call, and with it the job).
using EventHandler = std::function<bool(const gradwatch::v1::JobEvent&)>;

/// A connection to a gradwatch server: the gradwatch.v1.Trainer service
/// and grpc.health.v1.Health. Errors are the server's canonical status
/// (INVALID_ARGUMENT with the field path, NOT_FOUND, ...). Thread-safe:
/// calls may be made from several threads at once.
///
///   auto client = Client::Connect("127.0.0.1:50051", {});
///   if (!client.ok()) return client.status();  // "cannot reach ..."
///   absl::StatusOr<v1::Job> job = (*client)->SubmitJob(spec);
class Client {
 public:
  /// Opens a channel (with the options' credentials) and waits until it
  /// is ready. UNAVAILABLE "cannot reach gradwatch server at TARGET:
  /// REASON" when it does not get ready within the connect timeout (a
  /// failed TLS handshake included).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const std::string& target, const ClientOptions& options);

  /// Wraps an existing channel (no waiting).
  Client(std::shared_ptr<grpc::Channel> channel, std::string target,
         const ClientOptions& options);

  const std::string& target() const { return target_; }

  absl::StatusOr<gradwatch::v1::Job> SubmitJob(
      const gradwatch::v1::JobSpec& spec);
  absl::StatusOr<gradwatch::v1::Job> GetJob(const std::string& job_id);
  /// Every job in `state` (JOB_STATE_UNSPECIFIED: all), newest first,
  /// following the pages.
  absl::StatusOr<std::vector<gradwatch::v1::Job>> ListJobs(
      gradwatch::v1::JobState state);
  absl::StatusOr<gradwatch::v1::Job> CancelJob(const std::string& job_id);
  absl::StatusOr<gradwatch::v1::PredictResponse> Predict(
      const std::string& job_id,
      const std::vector<gradwatch::v1::Example>& inputs);
  absl::StatusOr<gradwatch::v1::Model> GetModel(const std::string& job_id);

  /// Submits and follows a job until it ends or `on_event` returns false.
  absl::Status Train(const gradwatch::v1::JobSpec& spec,
                     const EventHandler& on_event);
  /// Replays a job's events with step >= from_step, then follows it live.
  /// Reads WatchJobBatches (WatchJob from a server without it) and hands
  /// the events to `on_event` one by one.
  absl::Status WatchJob(const std::string& job_id, uint64_t from_step,
                        const EventHandler& on_event);

  /// grpc.health.v1.Health/Check for `service` ("" = the whole server).
  absl::StatusOr<ServingStatus> CheckHealth(const std::string& service);

 private:
  // The token, and for unary calls the deadline.
  void Prepare(grpc::ClientContext* context, bool unary) const;
  template <typename Reader>
  absl::Status ReadStream(Reader* reader, grpc::ClientContext* context,
                          const EventHandler& on_event);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gradwatch::v1::Trainer::Stub> stub_;
  const std::string target_;
  const ClientOptions options_;
};

/// "SERVING", "NOT_SERVING", ...
const char* ServingStatusName(ServingStatus status);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_CLIENT_H_
