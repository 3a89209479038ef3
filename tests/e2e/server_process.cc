#include "tests/e2e/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace gradwatch::e2e {
namespace {

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::vector<std::string>& extra_flags) {
  return Spawn(extra_flags, /*capture_stderr=*/false);
}

absl::StatusOr<std::unique_ptr<ServerProcess>>
ServerProcess::StartCapturingStderr(
    const std::vector<std::string>& extra_flags) {
  return Spawn(extra_flags, /*capture_stderr=*/true);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Spawn(
    const std::vector<std::string>& extra_flags, bool capture_stderr) {
  const char* build_dir = std::getenv("GRADWATCH_BUILD_DIR");
  if (build_dir == nullptr) {
    return absl::FailedPreconditionError("GRADWATCH_BUILD_DIR is not set");
  }
  const std::string binary =
      absl::StrCat(build_dir, "/server/gradwatch-server");
  char dir_template[] = "/tmp/gradwatch-e2e-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  const std::string dir = dir_template;
  const std::string port_file = dir + "/port";

  // No /metrics and no job store unless a test asks for them (a later
  // flag wins): servers of concurrent tests would all want the default
  // port and the default data directory.
  std::vector<std::string> args = {binary, "--listen=127.0.0.1:0",
                                   "--port_file=" + port_file,
                                   "--metrics_listen=", "--data_dir="};
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const std::string stderr_path = capture_stderr ? dir + "/stderr" : "";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (capture_stderr) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                     stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
  }
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, binary.c_str(), &actions, nullptr,
                                  argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    return absl::NotFoundError(absl::StrCat("cannot start ", binary));
  }
  std::unique_ptr<ServerProcess> server(new ServerProcess(pid, dir));
  server->stderr_path_ = stderr_path;

  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int wait_status = 0;
    if (waitpid(pid, &wait_status, WNOHANG) == pid) {
      server->pid_ = 0;
      const std::string stderr_text = server->Stderr();
      return absl::InternalError(
          absl::StrCat("gradwatch-server exited with ", ExitCode(wait_status),
                       stderr_text.empty() ? "" : ": ", stderr_text));
    }
    std::ifstream in(port_file);
    int port = 0;
    if (in >> port && port > 0) {
      server->port_ = port;
      return server;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError("gradwatch-server did not start");
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string ServerProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::shared_ptr<grpc::Channel> ServerProcess::Channel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address(),
                                   grpc::InsecureChannelCredentials(), args);
}

std::shared_ptr<grpc::Channel> ServerProcess::Channel(
    const std::shared_ptr<grpc::ChannelCredentials>& credentials) const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address(), credentials, args);
}

std::string ServerProcess::Stderr() const {
  if (stderr_path_.empty()) return "";
  std::ifstream in(stderr_path_);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int wait_status = 0;
  while (waitpid(pid_, &wait_status, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
  return ExitCode(wait_status);
}

}  // namespace gradwatch::e2e
