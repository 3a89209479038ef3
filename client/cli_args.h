#ifndef GRADWATCH_CLIENT_CLI_ARGS_H_
#define GRADWATCH_CLIENT_CLI_ARGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gradwatch/v1/events.pb.h"

namespace gradwatch::client {

/// Exit codes of the gradwatch command (documented in its --help).
enum ExitCode : int {
  kExitOk = 0,
  /// The server answered an RPC with an error, or a local step failed
  /// (unreadable or invalid spec, validation, training setup).
  kExitError = 1,
  /// Bad command line.
  kExitUsage = 2,
  /// The server cannot be reached (or the connection was lost).
  kExitUnreachable = 3,
  /// A watched job ended FAILED, CANCELLED or INTERRUPTED.
  kExitJobNotSucceeded = 4,
};

/// The server used when neither --server nor GRADWATCH_SERVER is given.
inline constexpr char kDefaultServer[] = "127.0.0.1:50051";

enum class OutputMode { kAuto, kText, kJsonl };

/// A parsed command line. A plain value type.
struct CommandLine {
  /// "train", "submit", ..., or "help" (then `args` names the subject).
  std::string command;
  std::vector<std::string> args;

  std::string server = kDefaultServer;
  absl::Duration timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(5);
  OutputMode output = OutputMode::kAuto;
  bool quiet = false;
  /// --tls-ca, --tls-cert, --tls-key: PEM files; any of them turns TLS on.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  /// --token; empty: GRADWATCH_TOKEN, if set, is sent instead.
  std::string token;

  /// train --local
  bool local = false;
  /// watch --from-step
  uint64_t from_step = 0;
  /// list --state
  gradwatch::v1::JobState state = gradwatch::v1::JOB_STATE_UNSPECIFIED;
  /// export --format: "jsonl" or "csv".
  std::string format = "jsonl";
  /// export and plot -o/--out; empty = standard output (export only).
  std::string out;
};

/// Parses the arguments after the program name. `server_env` is the value
/// of GRADWATCH_SERVER, if set. Usage errors are INVALID_ARGUMENT with a
/// message for the user ("unknown subcommand 'frob'"). Flag names may use
/// '_' for '-' (--tls_ca is --tls-ca), as the server's flags do.
/// Thread-safe.
absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args,
    std::optional<std::string> server_env);

/// `gradwatch --help`: every subcommand, every flag, the exit codes.
std::string UsageText();

/// `gradwatch help SUBCOMMAND`; INVALID_ARGUMENT for an unknown one.
absl::StatusOr<std::string> SubcommandHelp(absl::string_view subcommand);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_CLI_ARGS_H_
