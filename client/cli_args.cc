#include "client/cli_args.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace gradwatch::client {
namespace {

namespace v1 = ::gradwatch::v1;

struct Subcommand {
  const char* name;
  const char* args;  // placeholder names, for the usage line
  int min_args;
  int max_args;
  const char* summary;
  const char* details;
};

constexpr Subcommand kSubcommands[] = {
    {"train", "SPEC.json", 1, 1,
     "submit a job and stream its events until it ends",
     "Submits the spec with the Train RPC and prints the job's events as they\n"
     "arrive; the command ends with the job. Ctrl-C cancels the job and\n"
     "still prints its summary (exit code 4); a second Ctrl-C quits at once.\n"
     "With --local the job runs in this process (no server), printing the\n"
     "same stream with job id \"local\"."},
    {"submit", "SPEC.json", 1, 1, "queue a job and print its id",
     "Sends the spec with SubmitJob and prints the new job's id (text) or the\n"
     "Job (jsonl) at once; follow it with `gradwatch watch JOB`."},
    {"watch", "JOB", 1, 1, "replay a job's events, then follow it live",
     "Prints the job's history from --from-step on, then its events as they\n"
     "happen until it ends. Interrupting it never cancels the job."},
    {"list", "", 0, 0, "list jobs, newest first",
     "Prints one line per job (id, state, diagnosis, progress, loss, name),\n"
     "or one Job per line with --output jsonl."},
    {"get", "JOB", 1, 1, "print a job as JSON",
     "Prints the Job message (state, progress, run info, summary, spec)."},
    {"cancel", "JOB", 1, 1, "cancel a queued or running job",
     "A job that already ended is left as it is; its state is printed."},
    {"export", "JOB", 1, 1, "write a job's events or statistics to a file",
     "Writes the job's whole history: with --format jsonl every event as a\n"
     "line of JSON, with --format csv one row per step and layer (loss,\n"
     "dead ratios, saturation, gradient and update figures). A running job\n"
     "is followed to its end."},
    {"plot", "JOB", 1, 1, "draw a job's statistics as an SVG file",
     "Draws the loss, each layer's dead ratio with the DEAD_RELU alert\n"
     "threshold, each layer's weight-gradient norm (log scale) and update\n"
     "ratio (log scale) against the step, into the file given with -o; it\n"
     "opens in any browser. A running job is followed to its end."},
    {"predict", "JOB ROWS.csv", 2, 2, "run a trained model on CSV rows",
     "Each line of ROWS.csv holds one input row: comma-separated numbers, as\n"
     "many as the model's inputs. A first line that is not all numbers is a\n"
     "header and is skipped. Prints one line per row: the predicted class and\n"
     "the outputs (softmax or sigmoid probabilities, or raw regression\n"
     "outputs), or one Prediction per line with --output jsonl."},
    {"model", "JOB", 1, 1, "print a job's weights and biases as JSON",
     "Prints the Model message (GetModel); its `layers` can be pasted into a\n"
     "spec's model.initial_weights to reproduce a starting point."},
    {"validate", "SPEC.json", 1, 1, "check a spec locally",
     "Parses the spec and runs the same validation as the server, without\n"
     "contacting it. Prints OK, or the first error with its field path."},
    {"health", "", 0, 0, "check that the server is SERVING",
     "Calls grpc.health.v1.Health/Check and prints the serving status; exits\n"
     "0 only when it is SERVING (1 otherwise, 3 when unreachable)."},
    {"help", "[SUBCOMMAND]", 0, 1, "describe the command or a subcommand",
     "Prints the overview, or a subcommand's usage and flags."},
};

struct Flag {
  const char* name;
  const char* value;  // nullptr for a boolean flag
  const char* help;
  const char* only_for;  // nullptr: global
};

constexpr Flag kFlags[] = {
    {"server", "HOST:PORT",
     "server address; default $GRADWATCH_SERVER,\nelse 127.0.0.1:50051",
     nullptr},
    {"timeout", "SECONDS",
     "deadline of each unary RPC (submit, get, list,\ncancel, predict, "
     "model, health); default 30;\ndurations such as 2m also work",
     nullptr},
    {"connect-timeout", "SECONDS",
     "how long to wait for the connection; default 5", nullptr},
    {"output", "auto|text|jsonl",
     "text for people, jsonl for programs (one JSON\nobject per line); "
     "auto (default): text on a\nterminal, jsonl otherwise",
     nullptr},
    {"quiet", nullptr, "print only the outcome (the job's summary) and\nerrors",
     nullptr},
    {"tls-ca", "FILE",
     "speak TLS, trusting the server's certificate\nif this PEM CA signed "
     "it (without it, a\n--tls-cert client trusts the system's roots)",
     nullptr},
    {"tls-cert", "FILE",
     "PEM client certificate for mutual TLS (with\n--tls-key)", nullptr},
    {"tls-key", "FILE", "PEM private key of --tls-cert", nullptr},
    {"token", "TOKEN",
     "bearer token sent with every call; default\n$GRADWATCH_TOKEN (which, "
     "unlike the command\nline, other users cannot see in ps)",
     nullptr},
    {"help", nullptr, "describe the command or a subcommand", nullptr},
    {"local", nullptr, "train in this process, without a server", "train"},
    {"from-step", "N", "replay events from step N on; default 0 (all)",
     "watch"},
    {"format", "csv|jsonl",
     "csv: one row per step and layer; jsonl (default):\nevery event",
     "export"},
    {"out", "FILE",
     "write to FILE (also -o FILE); export: default\nstandard output",
     "export,plot"},
    {"state", "STATE",
     "only jobs in STATE: queued, running, succeeded,\nfailed, cancelled or "
     "interrupted",
     "list"},
};

const Subcommand* FindSubcommand(absl::string_view name) {
  for (const Subcommand& subcommand : kSubcommands) {
    if (name == subcommand.name) return &subcommand;
  }
  return nullptr;
}

const Flag* FindFlag(absl::string_view name) {
  const std::string hyphenated = absl::StrReplaceAll(name, {{"_", "-"}});
  for (const Flag& flag : kFlags) {
    if (hyphenated == flag.name) return &flag;
  }
  return nullptr;
}

// Whether a flag may be given to `command`.
bool AppliesTo(const Flag& flag, absl::string_view command) {
  if (flag.only_for == nullptr) return true;
  for (absl::string_view scope : absl::StrSplit(flag.only_for, ',')) {
    if (scope == command) return true;
  }
  return false;
}

// One line per flag, help wrapped under a column: the global flags
// (subcommand nullptr), one subcommand's own flags, or with `all_scoped`
// every subcommand's flags, each prefixed with its subcommands.
std::string FlagLines(const char* subcommand, bool all_scoped) {
  std::string text;
  for (const Flag& flag : kFlags) {
    const bool global = flag.only_for == nullptr;
    if (all_scoped ? global
                   : (subcommand == nullptr
                          ? !global
                          : global || !AppliesTo(flag, subcommand))) {
      continue;
    }
    const std::string left =
        flag.value ? absl::StrCat("--", flag.name, " ", flag.value)
                   : absl::StrCat("--", flag.name);
    std::string help = flag.help;
    if (all_scoped) {
      help = absl::StrCat(absl::StrReplaceAll(flag.only_for, {{",", ", "}}),
                          ": ", help);
    }
    absl::StrAppend(
        &text,
        absl::StrFormat(
            "  %-26s %s\n", left,
            absl::StrReplaceAll(help, {{"\n", "\n" + std::string(29, ' ')}})));
  }
  return text;
}

absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::StatusOr<absl::Duration> ParseSeconds(absl::string_view flag,
                                            absl::string_view value) {
  double seconds = 0;
  absl::Duration duration;
  if (absl::SimpleAtod(value, &seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(value, &duration)) {
    duration = absl::ZeroDuration();
  }
  if (duration <= absl::ZeroDuration() ||
      duration == absl::InfiniteDuration()) {
    return UsageError(
        absl::StrCat("--", flag, " must be a positive number of seconds, got '",
                     value, "'"));
  }
  return duration;
}

absl::Status ApplyFlag(const Flag& flag, absl::string_view value,
                       CommandLine* line) {
  const absl::string_view name = flag.name;
  if (name == "server") {
    if (value.empty()) return UsageError("--server must not be empty");
    line->server = std::string(value);
  } else if (name == "timeout" || name == "connect-timeout") {
    absl::StatusOr<absl::Duration> duration = ParseSeconds(name, value);
    if (!duration.ok()) return duration.status();
    (name == "timeout" ? line->timeout : line->connect_timeout) = *duration;
  } else if (name == "output") {
    if (value == "auto") {
      line->output = OutputMode::kAuto;
    } else if (value == "text") {
      line->output = OutputMode::kText;
    } else if (value == "jsonl") {
      line->output = OutputMode::kJsonl;
    } else {
      return UsageError(absl::StrCat(
          "--output must be auto, text or jsonl, got '", value, "'"));
    }
  } else if (name == "quiet") {
    line->quiet = true;
  } else if (name == "tls-ca" || name == "tls-cert" || name == "tls-key") {
    if (value.empty()) return UsageError(absl::StrCat("--", name, " is empty"));
    (name == "tls-ca"     ? line->tls_ca
     : name == "tls-cert" ? line->tls_cert
                          : line->tls_key) = std::string(value);
  } else if (name == "token") {
    // Never echoed: the value is a secret.
    if (value.empty()) return UsageError("--token is empty");
    line->token = std::string(value);
  } else if (name == "local") {
    line->local = true;
  } else if (name == "from-step") {
    if (!absl::SimpleAtoi(value, &line->from_step)) {
      return UsageError(absl::StrCat(
          "--from-step must be a non-negative integer, got '", value, "'"));
    }
  } else if (name == "format") {
    if (value != "csv" && value != "jsonl") {
      return UsageError(
          absl::StrCat("--format must be csv or jsonl, got '", value, "'"));
    }
    line->format = std::string(value);
  } else if (name == "out") {
    if (value.empty()) return UsageError("--out must not be empty");
    line->out = std::string(value);
  } else if (name == "state") {
    v1::JobState state;
    if (!v1::JobState_Parse(absl::AsciiStrToUpper(value), &state) ||
        state == v1::JOB_STATE_UNSPECIFIED) {
      return UsageError(absl::StrCat(
          "--state must be queued, running, succeeded, failed, cancelled or "
          "interrupted, got '",
          value, "'"));
    }
    line->state = state;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args,
    std::optional<std::string> server_env) {
  CommandLine line;
  if (server_env.has_value() && !server_env->empty()) line.server = *server_env;

  std::vector<std::string> positional;
  std::vector<std::pair<const Flag*, std::string>> flags;
  bool help = false;
  bool only_positional = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (only_positional || arg == "-" || !absl::StartsWith(arg, "-")) {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "-h") {
      help = true;
      continue;
    }
    if (arg == "-o") {  // short for --out
      if (i + 1 >= args.size()) return UsageError("-o needs a value (FILE)");
      flags.emplace_back(FindFlag("out"), args[++i]);
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return UsageError(absl::StrCat("unknown flag '", arg, "'"));
    }
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(
        2, equals == std::string::npos ? std::string::npos : equals - 2);
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      return UsageError(absl::StrCat("unknown flag '--", name, "'"));
    }
    std::string value;
    if (flag->value == nullptr) {
      if (equals != std::string::npos) {
        return UsageError(absl::StrCat("--", name, " takes no value"));
      }
    } else if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return UsageError(
          absl::StrCat("--", name, " needs a value (", flag->value, ")"));
    }
    if (absl::string_view(flag->name) == "help") {
      help = true;
      continue;
    }
    flags.emplace_back(flag, value);
  }

  if (positional.empty()) {
    if (help) {
      line.command = "help";
      return line;
    }
    return UsageError("no subcommand given");
  }
  const Subcommand* subcommand = FindSubcommand(positional.front());
  if (subcommand == nullptr) {
    return UsageError(
        absl::StrCat("unknown subcommand '", positional.front(), "'"));
  }
  line.command = subcommand->name;
  line.args.assign(positional.begin() + 1, positional.end());
  if (help) {  // "gradwatch train --help" is "gradwatch help train"
    if (line.command != "help") line.args = {line.command};
    line.command = "help";
    line.args.resize(std::min<size_t>(line.args.size(), 1));
    if (!line.args.empty() && FindSubcommand(line.args[0]) == nullptr) {
      return UsageError(
          absl::StrCat("unknown subcommand '", line.args[0], "'"));
    }
    return line;
  }
  for (const auto& [flag, value] : flags) {
    if (!AppliesTo(*flag, line.command)) {
      return UsageError(
          absl::StrCat("--", flag->name, " is a flag of '",
                       absl::StrReplaceAll(flag->only_for, {{",", "' and '"}}),
                       "', not of '", line.command, "'"));
    }
    absl::Status applied = ApplyFlag(*flag, value, &line);
    if (!applied.ok()) return applied;
  }
  const int count = static_cast<int>(line.args.size());
  if (count < subcommand->min_args || count > subcommand->max_args) {
    return UsageError(absl::StrCat("usage: gradwatch ", subcommand->name,
                                   subcommand->args[0] == '\0' ? "" : " ",
                                   subcommand->args));
  }
  if (line.command == "help" && !line.args.empty() &&
      FindSubcommand(line.args[0]) == nullptr) {
    return UsageError(absl::StrCat("unknown subcommand '", line.args[0], "'"));
  }
  if (line.command == "plot" && line.out.empty()) {
    return UsageError("plot needs the output file: -o FILE.svg");
  }
  if (line.tls_cert.empty() != line.tls_key.empty()) {
    return UsageError(line.tls_cert.empty() ? "--tls-key needs --tls-cert"
                                            : "--tls-cert needs --tls-key");
  }
  return line;
}

std::string UsageText() {
  std::string text =
      "gradwatch - train multilayer perceptrons on a gradwatch server and\n"
      "watch the health of every layer's gradients.\n\n"
      "usage: gradwatch [FLAGS] SUBCOMMAND [ARGS] [FLAGS]\n\n"
      "subcommands:\n";
  for (const Subcommand& subcommand : kSubcommands) {
    const std::string left =
        absl::StrCat(subcommand.name, subcommand.args[0] == '\0' ? "" : " ",
                     subcommand.args);
    absl::StrAppend(&text,
                    absl::StrFormat("  %-26s %s\n", left, subcommand.summary));
  }
  absl::StrAppend(&text, "\nglobal flags:\n", FlagLines(nullptr, false));
  absl::StrAppend(&text, "\nsubcommand flags:\n", FlagLines(nullptr, true));
  absl::StrAppend(
      &text,
      "\nSpecs are JobSpec messages in protobuf's JSON mapping (see "
      "examples/).\n"
      "Flags may come before or after the subcommand; --flag=value and\n"
      "--flag value are both accepted, and '_' may stand for '-' in a\n"
      "flag's name (--tls_ca).\n\n"
      "exit codes:\n"
      "  0  success (for train and watch: the job SUCCEEDED; health: SERVING)\n"
      "  1  the server answered with an error, or a local step failed (spec\n"
      "     unreadable or invalid, health not SERVING)\n"
      "  2  usage error (unknown subcommand or flag, missing argument)\n"
      "  3  the server cannot be reached, or the connection was lost\n"
      "  4  the job ended FAILED, CANCELLED or INTERRUPTED (train, watch)\n\n"
      "`gradwatch help SUBCOMMAND` describes one subcommand.\n");
  return text;
}

absl::StatusOr<std::string> SubcommandHelp(absl::string_view name) {
  const Subcommand* subcommand = FindSubcommand(name);
  if (subcommand == nullptr) {
    return UsageError(absl::StrCat("unknown subcommand '", name, "'"));
  }
  std::string text = absl::StrCat(
      "usage: gradwatch ", subcommand->name,
      subcommand->args[0] == '\0' ? "" : " ", subcommand->args, " [FLAGS]\n\n",
      subcommand->summary, ".\n\n", subcommand->details, "\n");
  const std::string own = FlagLines(subcommand->name, false);
  if (!own.empty()) absl::StrAppend(&text, "\nflags:\n", own);
  absl::StrAppend(&text, "\nglobal flags:\n", FlagLines(nullptr, false));
  return text;
}

}  // namespace gradwatch::client
