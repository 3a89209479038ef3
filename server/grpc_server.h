#ifndef GRADWATCH_SERVER_GRPC_SERVER_H_
#define GRADWATCH_SERVER_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth.h"
#include "server/job_observer.h"
#include "server/job_store.h"
#include "server/limits.h"
#include "server/tls_credentials.h"

namespace gradwatch::server {

class JobManager;
class TrainerService;

/// How a server is set up; main fills it from the flags.
struct ServerOptions {
  /// HOST:PORT to bind; port 0 picks a free port.
  std::string listen = "127.0.0.1:50051";
  ServerLimits limits;
  /// Jobs trained at once (worker threads).
  int max_concurrent_jobs = 1;
  /// oneDNN threads per job when its spec says 0.
  int job_threads = 1;
  /// On shutdown, how long running jobs may go on before they are stopped.
  absl::Duration shutdown_grace = absl::Seconds(30);
  /// Told every job event, e.g. the MetricsExporter (not owned; may be
  /// null; must outlive the server).
  JobObserver* job_observer = nullptr;
  /// Where jobs are kept across restarts (not owned; null keeps them in
  /// memory only; must outlive the server).
  JobStore* store = nullptr;
  /// How long finished jobs are kept after they ended.
  absl::Duration retention = absl::InfiniteDuration();
  /// TLS on the gRPC port (mutual when it has a client CA); default
  /// plaintext.
  ServerTls tls;
  /// Checks every Trainer call's bearer token; default: no tokens, every
  /// caller is an anonymous admin.
  Authenticator auth;
};

/// The gradwatch gRPC server: the Trainer service over a JobManager, the
/// standard health service (grpc.health.v1.Health, SERVING while up) and
/// server reflection, over TLS or plaintext. Bearer tokens guard the
/// Trainer service only: health and reflection (the public schema) stay
/// open. Thread-safe; Shutdown may be called from any thread.
class GrpcServer {
 public:
  /// Binds and starts serving. UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const ServerOptions& options);
  ~GrpcServer();

  /// The bound port (the chosen one when the options said port 0).
  int port() const { return port_; }
  /// The host part of ServerOptions.listen.
  const std::string& host() const { return host_; }

  /// One line saying what is missing when the server listens beyond
  /// loopback without TLS or without tokens; empty otherwise.
  std::string ExposureWarning() const;

  /// Reports NOT_SERVING, refuses new jobs, lets running jobs finish
  /// within the shutdown grace (then marks them INTERRUPTED), lets their
  /// streams drain, and stops the server. Idempotent.
  void Shutdown();

 private:
  GrpcServer(const ServerOptions& options, std::string host);

  const ServerOptions options_;
  const std::string host_;
  int port_ = 0;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<TrainerService> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_GRPC_SERVER_H_
