// gradwatch_load_bench: many concurrent clients against a real
// gradwatch-server on loopback (tests/e2e/load_workload.h): jobs/s,
// SubmitJob and GetJob latency, the server's peak RSS, and whether every
// job reached a final state with its full history. Exits 1 if any did not.
// docs/benchmarks.md ("Load") gives the command and the figures.

#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/e2e/load_workload.h"
#include "tests/e2e/server_process.h"

ABSL_FLAG(int, clients, 16, "Client threads, each with its own connection.");
ABSL_FLAG(int, jobs_per_client, 50, "Jobs each client submits in turn.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of every random choice of the workload.");
ABSL_FLAG(double, cancel_fraction, 0.25,
          "Fraction of jobs cancelled: right after submission, once they "
          "run, or after a random number of their events.");
ABSL_FLAG(double, watch_drop_fraction, 0.3,
          "Fraction of watch streams the client closes at a random event "
          "and reopens from the last step seen.");
ABSL_FLAG(int, max_seconds, 300,
          "No job is submitted after this many seconds; every RPC's "
          "deadline is 60 s later.");
ABSL_FLAG(std::string, server, "",
          "HOST:PORT of a running server; empty starts gradwatch-server "
          "from the build tree on 127.0.0.1 port 0.");
ABSL_FLAG(int, server_pid, 0,
          "With --server: the server's process id, for its peak RSS.");
ABSL_FLAG(std::vector<std::string>, server_flags, {},
          "Comma-separated flags added to the started server's command "
          "line, e.g. --server_flags=--data_dir=/tmp/gw,--max_concurrent_"
          "jobs=2.");

namespace {

// A field of /proc/PID/status in KiB ("VmHWM", "VmRSS"), or -1.
int64_t StatusKiB(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream value(line.substr(field.size() + 1));
    int64_t kib = -1;
    value >> kib;
    return kib;
  }
  return -1;
}

// User plus system CPU time of `pid` in seconds (/proc/PID/stat), or -1.
double CpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return -1;
  // Fields after the command name, which may hold spaces: state is the
  // third field, utime and stime the 14th and 15th.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) return line.substr(colon + 2);
  }
  return "unknown CPU";
}

std::string LoadAverage() {
  std::ifstream loadavg("/proc/loadavg");
  double one = 0, five = 0, fifteen = 0;
  loadavg >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

// ServerProcess finds the server under $GRADWATCH_BUILD_DIR; this program
// lives in that tree's bench/ folder.
void DefaultBuildDir() {
  if (std::getenv("GRADWATCH_BUILD_DIR") != nullptr) return;
  std::error_code error;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return;
  setenv("GRADWATCH_BUILD_DIR", self.parent_path().parent_path().c_str(), 0);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load test of a gradwatch server: concurrent clients submit, watch, "
      "poll and cancel small jobs; then every job's state and history are "
      "checked.\nUsage: gradwatch_load_bench [flags]");
  absl::ParseCommandLine(argc, argv);

  gradwatch::e2e::LoadOptions options;
  options.clients = absl::GetFlag(FLAGS_clients);
  options.jobs_per_client = absl::GetFlag(FLAGS_jobs_per_client);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.cancel_fraction = absl::GetFlag(FLAGS_cancel_fraction);
  options.watch_drop_fraction = absl::GetFlag(FLAGS_watch_drop_fraction);
  options.max_duration = absl::Seconds(absl::GetFlag(FLAGS_max_seconds));
  if (options.clients < 1 || options.jobs_per_client < 1 ||
      options.cancel_fraction < 0 || options.cancel_fraction > 1 ||
      options.watch_drop_fraction < 0 || options.watch_drop_fraction > 1 ||
      absl::GetFlag(FLAGS_max_seconds) < 1) {
    std::fprintf(stderr,
                 "--clients, --jobs_per_client and --max_seconds must be at "
                 "least 1, the fractions in [0, 1]\n");
    return 2;
  }

  std::unique_ptr<gradwatch::e2e::ServerProcess> started;
  std::string address = absl::GetFlag(FLAGS_server);
  pid_t pid = absl::GetFlag(FLAGS_server_pid);
  if (address.empty()) {
    DefaultBuildDir();
    auto server =
        gradwatch::e2e::ServerProcess::Start(absl::GetFlag(FLAGS_server_flags));
    if (!server.ok()) {
      std::fprintf(stderr, "gradwatch_load_bench: %s\n",
                   server.status().ToString().c_str());
      return 1;
    }
    started = std::move(*server);
    address = started->address();
    pid = started->pid();
  }

  std::printf("machine: %s, %u cores; load average %s\n", CpuModel().c_str(),
              std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::printf("server %s; %d clients x %d jobs, seed %llu\n", address.c_str(),
              options.clients, options.jobs_per_client,
              static_cast<unsigned long long>(options.seed));
  std::fflush(stdout);
  const gradwatch::e2e::LoadReport report =
      gradwatch::e2e::RunLoad(address, options);
  std::printf("%s", gradwatch::e2e::FormatReport(report).c_str());
  const double jobs = static_cast<double>(report.jobs_submitted);
  if (pid > 0 && jobs > 0) {
    const double server_cpu = CpuSeconds(pid);
    std::printf("CPU, load and check: server %.2f s (%.2f ms per job)",
                server_cpu, 1000 * server_cpu / jobs);
    if (started != nullptr) {
      const double own_cpu = CpuSeconds(getpid());
      std::printf(", clients %.2f s (%.2f ms per job)", own_cpu,
                  1000 * own_cpu / jobs);
    }
    std::printf("\n");
  }
  if (pid > 0) {
    std::printf("server peak RSS (VmHWM): %.1f MiB; RSS now %.1f MiB\n",
                static_cast<double>(StatusKiB(pid, "VmHWM")) / 1024,
                static_cast<double>(StatusKiB(pid, "VmRSS")) / 1024);
  }
  std::printf("load average after: %s\n", LoadAverage().c_str());

  bool clean_exit = true;
  if (started != nullptr) {
    const int code = started->Stop(SIGTERM);
    clean_exit = code == 0;
    if (!clean_exit) std::printf("server exited with %d\n", code);
  }
  // Stopping at --max_seconds leaves fewer jobs, none of them incomplete.
  const bool complete =
      report.failures.empty() && report.server_serving && clean_exit;
  std::printf("%s\n", complete ? "COMPLETE" : "INCOMPLETE");
  return complete ? 0 : 1;
}
