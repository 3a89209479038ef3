// gradwatch-server: flag parsing and wiring only.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/auth.h"
#include "server/grpc_server.h"
#include "server/limits.h"
#include "server/metrics_exporter.h"
#include "server/signal_waiter.h"
#include "server/sqlite_job_store.h"
#include "server/tls_credentials.h"

namespace {

int CoreCount() {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

const gradwatch::server::ServerLimits kDefaults;

// The XDG data directory of the user running the server; a service
// without a home directory keeps its jobs under /var/lib.
std::string DefaultDataDir() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/gradwatch";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') {
    return std::string(home) + "/.local/share/gradwatch";
  }
  return "/var/lib/gradwatch";
}

// --help lists the flags defined in this file (Abseil would otherwise look
// for a file named after the program).
bool IsThisFile(absl::string_view path) {
  return absl::EndsWith(path, "server/main.cc");
}

}  // namespace

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "HOST:PORT to serve on; port 0 picks a free port (see --port_file).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once the server "
          "listens (for tests and scripts that use --listen=HOST:0).");
ABSL_FLAG(int, max_concurrent_jobs, CoreCount(),
          "Jobs trained at the same time, each on its own worker thread "
          "(default: the number of cores).");
ABSL_FLAG(int64_t, max_queued_jobs, kDefaults.max_queued_jobs,
          "Jobs that may wait for a worker; a submission beyond it is "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_parameters, kDefaults.max_parameters,
          "Largest model accepted, in trainable parameters.");
ABSL_FLAG(int64_t, max_steps, kDefaults.max_steps,
          "Most optimizer steps per job (epochs are converted to steps).");
ABSL_FLAG(int64_t, max_batch_size, kDefaults.max_batch_size,
          "Largest training.batch_size accepted.");
ABSL_FLAG(int64_t, max_dataset_bytes, kDefaults.max_dataset_bytes,
          "Largest dataset carried in a spec (inline rows or CSV), in bytes, "
          "both as sent and as examples in memory (4 bytes a value).");
ABSL_FLAG(int64_t, max_activations, kDefaults.max_activations,
          "Most activations of one step: the rows (training.batch_size, at "
          "least the 256 of an evaluation chunk) times the input features "
          "plus every layer's units.");
ABSL_FLAG(int64_t, max_message_bytes, kDefaults.max_message_bytes,
          "Largest request message received, in bytes; keep it above "
          "--max_dataset_bytes.");
ABSL_FLAG(int64_t, max_history_bytes, kDefaults.max_history_bytes,
          "Most bytes of serialized events one job's history may hold (kept "
          "in memory until the job's retention ends); a job that passes it "
          "ends FAILED.");
ABSL_FLAG(int64_t, max_watchers_per_job, kDefaults.max_watchers_per_job,
          "Most WatchJob/WatchJobBatches/Train streams open on one job at "
          "once.");
ABSL_FLAG(int, job_threads, 0,
          "oneDNN threads per job when the spec leaves training.threads at "
          "0; 0 = cores / --max_concurrent_jobs, at least 1.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(30),
          "On SIGTERM/SIGINT, how long running jobs may continue before "
          "they are stopped and marked INTERRUPTED.");
ABSL_FLAG(std::string, data_dir, DefaultDataDir(),
          "Directory of the job store, gradwatch.db (SQLite, created if "
          "missing): jobs, their full histories and trained models survive "
          "restarts, and jobs running at a crash come back INTERRUPTED. "
          "Empty keeps jobs in memory only.");
ABSL_FLAG(absl::Duration, retention, absl::Hours(168),
          "How long a finished job (record, history and model) is kept after "
          "it ended; a periodic sweep removes older ones from memory and the "
          "store.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "HOST:PORT of the Prometheus /metrics endpoint; port 0 picks a free "
          "port (see --metrics_port_file); empty disables it.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the bound metrics port is written to this file.");
ABSL_FLAG(absl::Duration, metrics_retention, absl::Minutes(10),
          "How long a finished job's series stay on /metrics; keep it longer "
          "than the slowest alert's `for` plus a scrape interval.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the gRPC port; with --tls_key the port "
          "speaks TLS only. Empty: plaintext (keep it on loopback).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s) for mutual TLS: a client must present a "
          "certificate signed by one of them. Needs --tls_cert.");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "File of bearer tokens, one `TOKEN PRINCIPAL [admin]` per line "
          "('#' starts a comment; see docs/security.md). Every Trainer call "
          "must then send `authorization: Bearer TOKEN`; a principal sees only "
          "its own jobs, an admin every job. Empty: no authentication, every "
          "caller is an admin.");
ABSL_FLAG(double, dead_neuron_alert_threshold, 0.5,
          "Dead-neuron ratio above which GradwatchDeadNeuronRatioHigh fires; "
          "exported as gradwatch_dead_neuron_alert_threshold, which the rule "
          "compares against.");

namespace {

// Writes `port` to `path` whole under a temporary name, then renames it: a
// reader never sees a partial port.
bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "gradwatch-server: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so that every thread inherits the mask.
  gradwatch::server::BlockTerminationSignals();
  // Debian's Abseil checks every mutex acquisition for lock-order cycles,
  // which costs the training threads 1-2% of their CPU. It is a debugging
  // aid: the tests, which link the same code without this main, keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = &IsThisFile;
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(
      "Serves the gradwatch.v1.Trainer gRPC API: trains MLP jobs and streams "
      "their per-layer gradient health.\nUsage: gradwatch-server [flags]");
  absl::ParseCommandLine(argc, argv);

  gradwatch::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.limits.max_parameters = absl::GetFlag(FLAGS_max_parameters);
  options.limits.max_steps = absl::GetFlag(FLAGS_max_steps);
  options.limits.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  options.limits.max_dataset_bytes = absl::GetFlag(FLAGS_max_dataset_bytes);
  options.limits.max_activations = absl::GetFlag(FLAGS_max_activations);
  options.limits.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.limits.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  options.limits.max_watchers_per_job =
      absl::GetFlag(FLAGS_max_watchers_per_job);
  options.limits.max_history_bytes = absl::GetFlag(FLAGS_max_history_bytes);
  options.max_concurrent_jobs = absl::GetFlag(FLAGS_max_concurrent_jobs);
  if (options.max_concurrent_jobs < 1) {
    std::fprintf(stderr, "--max_concurrent_jobs must be at least 1\n");
    return 2;
  }
  options.job_threads = absl::GetFlag(FLAGS_job_threads);
  if (options.job_threads <= 0) {
    options.job_threads =
        std::max(1, CoreCount() / options.max_concurrent_jobs);
  }
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.retention = absl::GetFlag(FLAGS_retention);
  if (options.retention <= absl::ZeroDuration()) {
    std::fprintf(stderr, "--retention must be positive\n");
    return 2;
  }
  absl::StatusOr<gradwatch::server::ServerTls> tls =
      gradwatch::server::LoadServerTls(absl::GetFlag(FLAGS_tls_cert),
                                       absl::GetFlag(FLAGS_tls_key),
                                       absl::GetFlag(FLAGS_tls_client_ca));
  if (!tls.ok()) {
    std::fprintf(stderr, "gradwatch-server: %s\n",
                 std::string(tls.status().message()).c_str());
    return 2;
  }
  options.tls = std::move(*tls);
  const std::string tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  if (!tokens_file.empty()) {
    auto auth = gradwatch::server::Authenticator::FromFile(tokens_file);
    if (!auth.ok()) {
      std::fprintf(stderr, "gradwatch-server: --auth_tokens_file: %s\n",
                   std::string(auth.status().message()).c_str());
      return 2;
    }
    options.auth = std::move(*auth);
  }

  // Before the server: it must outlive the job manager that writes to it,
  // and its destructor flushes the last writes after the server stopped.
  std::unique_ptr<gradwatch::server::SqliteJobStore> store;
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (!data_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(data_dir, error);
    if (error) {
      std::fprintf(stderr, "gradwatch-server: cannot create %s: %s\n",
                   data_dir.c_str(), error.message().c_str());
      return 1;
    }
    auto opened =
        gradwatch::server::SqliteJobStore::Open(data_dir + "/gradwatch.db");
    if (!opened.ok()) {
      std::fprintf(stderr, "gradwatch-server: %s\n",
                   opened.status().ToString().c_str());
      return 1;
    }
    store = std::move(*opened);
    options.store = store.get();
    std::printf("gradwatch-server jobs stored in %s/gradwatch.db\n",
                data_dir.c_str());
  }

  // Before the server: it must outlive the job manager that feeds it.
  std::unique_ptr<gradwatch::server::MetricsExporter> metrics;
  const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (!metrics_listen.empty()) {
    gradwatch::server::MetricsExporterOptions metrics_options;
    metrics_options.retention = absl::GetFlag(FLAGS_metrics_retention);
    metrics_options.dead_neuron_alert_threshold =
        absl::GetFlag(FLAGS_dead_neuron_alert_threshold);
    metrics_options.store = store.get();
    metrics =
        std::make_unique<gradwatch::server::MetricsExporter>(metrics_options);
    absl::StatusOr<int> metrics_port = metrics->Serve(metrics_listen);
    if (!metrics_port.ok()) {
      std::fprintf(stderr, "gradwatch-server: %s\n",
                   metrics_port.status().ToString().c_str());
      return 1;
    }
    const std::string metrics_port_file =
        absl::GetFlag(FLAGS_metrics_port_file);
    if (!metrics_port_file.empty() &&
        !WritePortFile(metrics_port_file, *metrics_port)) {
      return 1;
    }
    std::printf("gradwatch-server metrics on http://%s:%d/metrics\n",
                metrics_listen.substr(0, metrics_listen.rfind(':')).c_str(),
                *metrics_port);
    options.job_observer = metrics.get();
  }

  auto server = gradwatch::server::GrpcServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "gradwatch-server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    if (!WritePortFile(port_file, (*server)->port())) return 1;
  }
  std::printf(
      "gradwatch-server listening on %s:%d (%s, %s)\n",
      (*server)->host().c_str(), (*server)->port(),
      !options.tls.enabled() ? "plaintext"
      : options.tls.mutual() ? "mutual TLS"
                             : "TLS",
      options.auth.requires_token()
          ? absl::StrCat(options.auth.token_count(), " bearer tokens").c_str()
          : "no authentication");
  std::fflush(stdout);
  const std::string warning = (*server)->ExposureWarning();
  if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());

  const int signal_number = gradwatch::server::WaitForTerminationSignal();
  std::fprintf(stderr, "gradwatch-server: signal %d, shutting down\n",
               signal_number);
  (*server)->Shutdown();
  return 0;
}
