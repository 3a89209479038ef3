#include "server/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/job_manager.h"
#include "server/rpc_counting_interceptor.h"
#include "server/trainer_service.h"

namespace gradwatch::server {
namespace {

// How long shutdown waits for streams to send the rest of their jobs.
constexpr absl::Duration kStreamDrainTimeout = absl::Seconds(5);

}  // namespace

GrpcServer::GrpcServer(const ServerOptions& options, std::string host)
    : options_(options), host_(std::move(host)) {}

GrpcServer::~GrpcServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const ServerOptions& options) {
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen must be HOST:PORT, got \"", options.listen, "\""));
  }
  std::unique_ptr<GrpcServer> server(
      new GrpcServer(options, options.listen.substr(0, colon)));
  JobManagerOptions job_options;
  job_options.workers = options.max_concurrent_jobs;
  job_options.job_threads = options.job_threads;
  job_options.max_queued_jobs = options.limits.max_queued_jobs;
  job_options.max_watchers_per_job = options.limits.max_watchers_per_job;
  job_options.max_history_bytes = options.limits.max_history_bytes;
  job_options.observer = options.job_observer;
  job_options.retention = options.retention;
  absl::StatusOr<std::unique_ptr<JobManager>> jobs =
      JobManager::Create(job_options, options.store);
  if (!jobs.ok()) return jobs.status();
  server->jobs_ = std::move(*jobs);
  server->service_ = std::make_unique<TrainerService>(
      options.limits, server->jobs_.get(), options.job_observer,
      &server->options_.auth);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, MakeServerCredentials(options.tls),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(
      options.limits.max_message_bytes, std::numeric_limits<int>::max())));
  builder.RegisterService(server->service_.get());
  if (options.job_observer != nullptr) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(
        std::make_unique<RpcCountingInterceptorFactory>(options.job_observer));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        options.tls.enabled()
            ? " (or the TLS setup was refused: is --tls_key the key of "
              "--tls_cert?)"
            : ""));
  }
  return server;
}

std::string GrpcServer::ExposureWarning() const {
  const bool tls = options_.tls.enabled();
  const bool auth = options_.auth.requires_token();
  if (IsLoopbackHost(host_) || (tls && auth)) return "";
  const std::string where = absl::StrCat(host_, ":", port_);
  if (!tls && !auth) {
    return absl::StrCat(
        "gradwatch-server: WARNING: listening on ", where,
        " without TLS (--tls_cert, --tls_key) and without authentication "
        "(--auth_tokens_file): anyone who reaches this port can submit, "
        "read, cancel and download jobs, and read the traffic");
  }
  if (!tls) {
    return absl::StrCat(
        "gradwatch-server: WARNING: listening on ", where,
        " without TLS (--tls_cert, --tls_key): bearer tokens, specs and "
        "models cross the network in plaintext");
  }
  if (options_.tls.mutual()) {
    return absl::StrCat(
        "gradwatch-server: WARNING: listening on ", where,
        " without authentication (--auth_tokens_file): every client with a "
        "certificate of --tls_client_ca can submit, read, cancel and "
        "download every job");
  }
  return absl::StrCat(
      "gradwatch-server: WARNING: listening on ", where,
      " without authentication (--auth_tokens_file): anyone who reaches "
      "this port can submit, read, cancel and download jobs");
}

void GrpcServer::Shutdown() {
  if (server_ == nullptr) return;
  if (auto* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  jobs_->Shutdown(options_.shutdown_grace);
  // Every job has ended: let streams deliver their jobs' last events. A
  // client that stopped reading, and idle connections, are then cut.
  jobs_->AwaitStreamsDrained(kStreamDrainTimeout);
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  service_.reset();
  jobs_.reset();
}

}  // namespace gradwatch::server
