#ifndef GRADWATCH_TESTS_E2E_SERVER_PROCESS_H_
#define GRADWATCH_TESTS_E2E_SERVER_PROCESS_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace gradwatch::e2e {

/// A real `gradwatch-server` process for end-to-end tests: started from the
/// build tree ($GRADWATCH_BUILD_DIR/server/gradwatch-server) on 127.0.0.1
/// port 0 with --port_file, so that nothing depends on a fixed port. The
/// destructor kills a server that is still running. Not thread-safe: one
/// test thread drives it.
class ServerProcess {
 public:
  /// Starts the server with `extra_flags` added to --listen and
  /// --port_file, and waits until it listens (or exits, or 60 s pass).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::vector<std::string>& extra_flags = {});
  /// As Start, with the server's standard error going to a file that
  /// Stderr() reads. A server that exits at startup is an error carrying
  /// its exit code and its standard error.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> StartCapturingStderr(
      const std::vector<std::string>& extra_flags = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// "127.0.0.1:PORT".
  std::string address() const;
  /// A new insecure channel to the server.
  std::shared_ptr<grpc::Channel> Channel() const;
  /// A new channel to the server with `credentials` (e.g. TLS).
  std::shared_ptr<grpc::Channel> Channel(
      const std::shared_ptr<grpc::ChannelCredentials>& credentials) const;
  /// What the server wrote to standard error so far; empty unless it was
  /// started by StartCapturingStderr.
  std::string Stderr() const;

  /// Sends `signal` and waits for the process to exit. Returns its exit
  /// code, or 128 + the signal that killed it.
  int Stop(int signal);

 private:
  ServerProcess(pid_t pid, std::string dir) : pid_(pid), dir_(std::move(dir)) {}
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Spawn(
      const std::vector<std::string>& extra_flags, bool capture_stderr);

  pid_t pid_;
  std::string dir_;
  int port_ = 0;
  std::string stderr_path_;
};

}  // namespace gradwatch::e2e

#endif  // GRADWATCH_TESTS_E2E_SERVER_PROCESS_H_
