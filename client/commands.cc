#include "client/commands.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/channel_credentials.h"
#include "client/client.h"
#include "client/event_printer.h"
#include "client/export.h"
#include "client/interrupt.h"
#include "client/local_run.h"
#include "client/plot.h"
#include "client/rows_csv.h"
#include "client/spec_io.h"
#include "engine/spec_validation.h"
#include "engine/trainer.h"

namespace gradwatch::client {
namespace {

namespace v1 = ::gradwatch::v1;

// What a command needs besides its arguments.
struct Context {
  const CommandLine& line;
  std::ostream& out;
  std::ostream& err;
  OutputFormat format;
  bool live;
  int terminal_width;
};

int ReportError(const absl::Status& status, std::ostream& err) {
  if (status.code() == absl::StatusCode::kUnavailable &&
      absl::StartsWith(status.message(), "cannot reach")) {
    err << status.message() << '\n';
    return kExitUnreachable;
  }
  err << "error: " << absl::StatusCodeToString(status.code()) << ": "
      << status.message() << '\n';
  return status.code() == absl::StatusCode::kUnavailable ? kExitUnreachable
                                                         : kExitError;
}

absl::StatusOr<std::unique_ptr<Client>> ConnectTo(const CommandLine& line) {
  ClientOptions options;
  options.connect_timeout = line.connect_timeout;
  options.rpc_timeout = line.timeout;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials({line.tls_ca, line.tls_cert, line.tls_key});
  if (!credentials.ok()) return credentials.status();
  options.credentials = std::move(*credentials);
  // The flag wins over the environment.
  options.token = line.token;
  const char* token_env = std::getenv("GRADWATCH_TOKEN");
  if (options.token.empty() && token_env != nullptr) options.token = token_env;
  return Client::Connect(line.server, options);
}

bool IsTerminalFailure(v1::JobState state) {
  return state == v1::FAILED || state == v1::CANCELLED ||
         state == v1::INTERRUPTED;
}

// The exit code of a finished event stream.
int StreamOutcome(const absl::Status& status, const EventPrinter& printer,
                  std::ostream& err) {
  if (!status.ok()) return ReportError(status, err);
  if (printer.state() == v1::SUCCEEDED) return kExitOk;
  if (IsTerminalFailure(printer.state())) return kExitJobNotSucceeded;
  err << "error: the event stream ended before the job did (state "
      << v1::JobState_Name(printer.state()) << ")\n";
  return kExitError;
}

PrinterOptions PrinterOptionsFor(const Context& context) {
  PrinterOptions options;
  options.format = context.format;
  options.live = context.live;
  options.quiet = context.line.quiet;
  options.terminal_width = context.terminal_width;
  return options;
}

int TrainLocal(const Context& context, const v1::JobSpec& spec) {
  EventPrinter printer(context.out, PrinterOptionsFor(context));
  engine::CancellationToken cancel;
  absl::StatusOr<v1::Summary> summary;
  {
    // Ctrl-C stops the run at the next step; it still ends with its summary.
    InterruptWatcher interrupt([&cancel] { cancel.Cancel(); });
    summary = RunLocalJob(
        spec, [&](const v1::JobEvent& event) { printer.Print(event); }, cancel);
  }
  printer.Finish();
  return StreamOutcome(summary.status(), printer, context.err);
}

int Train(const Context& context) {
  absl::StatusOr<v1::JobSpec> spec = ReadJobSpecFile(context.line.args[0]);
  if (!spec.ok()) return ReportError(spec.status(), context.err);
  if (context.line.local) return TrainLocal(context, *spec);
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  EventPrinter printer(context.out, PrinterOptionsFor(context));
  // Ctrl-C cancels the job with CancelJob and keeps reading, so that the
  // stream still ends with the job's summary (a second Ctrl-C quits at once,
  // which closes the call: that cancels the job too).
  Client* connection = client->get();
  absl::Mutex mu;
  std::string job_id;
  bool interrupted = false;
  absl::Status status;
  {
    InterruptWatcher interrupt([&] {
      std::string id;
      {
        absl::MutexLock lock(&mu);
        interrupted = true;
        id = job_id;
      }
      if (!id.empty()) connection->CancelJob(id).IgnoreError();
    });
    status = connection->Train(*spec, [&](const v1::JobEvent& event) {
      printer.Print(event);
      bool cancel_now = false;
      {
        absl::MutexLock lock(&mu);
        if (job_id.empty() && !event.job_id().empty()) {
          job_id = event.job_id();
          cancel_now = interrupted;  // Ctrl-C came before the first event
        }
      }
      if (cancel_now) connection->CancelJob(event.job_id()).IgnoreError();
      return true;
    });
  }
  printer.Finish();
  return StreamOutcome(status, printer, context.err);
}

int Watch(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  const std::string& job_id = context.line.args[0];
  EventPrinter printer(context.out, PrinterOptionsFor(context));
  if (context.line.from_step > 0) {
    // The replay starts after the "started" event that carries the total.
    absl::StatusOr<v1::Job> job = (*client)->GetJob(job_id);
    if (!job.ok()) return ReportError(job.status(), context.err);
    printer.set_steps_total(job->steps_total());
  }
  absl::Status status = (*client)->WatchJob(job_id, context.line.from_step,
                                            [&](const v1::JobEvent& event) {
                                              printer.Print(event);
                                              return true;
                                            });
  printer.Finish();
  return StreamOutcome(status, printer, context.err);
}

int Submit(const Context& context) {
  absl::StatusOr<v1::JobSpec> spec = ReadJobSpecFile(context.line.args[0]);
  if (!spec.ok()) return ReportError(spec.status(), context.err);
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  absl::StatusOr<v1::Job> job = (*client)->SubmitJob(*spec);
  if (!job.ok()) return ReportError(job.status(), context.err);
  if (context.format == OutputFormat::kJsonl) {
    context.out << ToJsonLine(*job) << '\n';
  } else {
    context.out << job->id() << '\n';
  }
  return kExitOk;
}

std::string FormatTime(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S",
                          absl::FromUnixSeconds(timestamp.seconds()),
                          absl::LocalTimeZone());
}

int List(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  absl::StatusOr<std::vector<v1::Job>> jobs =
      (*client)->ListJobs(context.line.state);
  if (!jobs.ok()) return ReportError(jobs.status(), context.err);
  if (context.format == OutputFormat::kJsonl) {
    for (const v1::Job& job : *jobs) context.out << ToJsonLine(job) << '\n';
    return kExitOk;
  }
  context.out << absl::StrFormat("%-22s %-11s %-21s %-15s %-10s %s\n", "JOB",
                                 "STATE", "DIAGNOSIS", "STEPS", "LOSS",
                                 "CREATED");
  for (const v1::Job& job : *jobs) {
    context.out << absl::StrFormat(
        "%-22s %-11s %-21s %-15s %-10.4g %s\n", job.id(),
        v1::JobState_Name(job.state()), v1::Diagnosis_Name(job.diagnosis()),
        absl::StrCat(job.steps_completed(), "/", job.steps_total()), job.loss(),
        FormatTime(job.create_time()));
  }
  return kExitOk;
}

// get, cancel and model print one message.
int PrintMessage(const Context& context,
                 const google::protobuf::Message& message) {
  context.out << (context.format == OutputFormat::kJsonl
                      ? ToJsonLine(message)
                      : ToJsonPretty(message))
              << '\n';
  return kExitOk;
}

int Get(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  absl::StatusOr<v1::Job> job = (*client)->GetJob(context.line.args[0]);
  if (!job.ok()) return ReportError(job.status(), context.err);
  return PrintMessage(context, *job);
}

int Cancel(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  absl::StatusOr<v1::Job> job = (*client)->CancelJob(context.line.args[0]);
  if (!job.ok()) return ReportError(job.status(), context.err);
  if (context.format == OutputFormat::kJsonl)
    return PrintMessage(context, *job);
  context.out << job->id() << ' ' << v1::JobState_Name(job->state()) << '\n';
  return kExitOk;
}

int Model(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  absl::StatusOr<v1::Model> model = (*client)->GetModel(context.line.args[0]);
  if (!model.ok()) return ReportError(model.status(), context.err);
  return PrintMessage(context, *model);
}

int Predict(const Context& context) {
  const std::string& path = context.line.args[1];
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return ReportError(text.status(), context.err);
  absl::StatusOr<std::vector<v1::Example>> rows = ParseRowsCsv(*text, path);
  if (!rows.ok()) return ReportError(rows.status(), context.err);
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  absl::StatusOr<v1::PredictResponse> response =
      (*client)->Predict(context.line.args[0], *rows);
  if (!response.ok()) return ReportError(response.status(), context.err);
  for (const v1::Prediction& prediction : response->predictions()) {
    if (context.format == OutputFormat::kJsonl) {
      context.out << ToJsonLine(prediction) << '\n';
      continue;
    }
    std::vector<std::string> outputs;
    for (float output : prediction.outputs()) {
      outputs.push_back(absl::StrFormat("%.6g", output));
    }
    context.out << prediction.predicted_class() << '\t'
                << absl::StrJoin(outputs, " ") << '\n';
  }
  return kExitOk;
}

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (file) file << contents;
  if (!file) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

int Export(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  // Written to memory first, so that a failed export leaves no partial file.
  std::ostringstream buffer;
  std::ostream& sink = context.line.out.empty() ? context.out : buffer;
  const bool csv = context.line.format == "csv";
  std::optional<StatsCsvWriter> csv_writer;
  if (csv) csv_writer.emplace(sink);
  uint64_t events = 0;
  absl::Status status = (*client)->WatchJob(
      context.line.args[0], 0, [&](const v1::JobEvent& event) {
        ++events;
        if (csv) {
          csv_writer->Write(event);
        } else {
          sink << ToJsonLine(event) << '\n';
        }
        return true;
      });
  if (!status.ok()) return ReportError(status, context.err);
  if (context.line.out.empty()) return kExitOk;
  absl::Status written = WriteFile(context.line.out, buffer.str());
  if (!written.ok()) return ReportError(written, context.err);
  context.out << "wrote " << events << " events of " << context.line.args[0]
              << " to " << context.line.out << '\n';
  return kExitOk;
}

int Plot(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  const std::string& job_id = context.line.args[0];
  absl::StatusOr<v1::Job> job = (*client)->GetJob(job_id);
  if (!job.ok()) return ReportError(job.status(), context.err);
  std::vector<v1::JobEvent> events;
  absl::Status status =
      (*client)->WatchJob(job_id, 0, [&](const v1::JobEvent& event) {
        events.push_back(event);
        return true;
      });
  if (!status.ok()) return ReportError(status, context.err);
  PlotOptions options;
  options.title = job->spec().name().empty()
                      ? job_id
                      : absl::StrCat(job_id, " - ", job->spec().name());
  const v1::RuleConfig& dead_relu =
      job->spec().monitoring().rules().dead_relu();
  if (dead_relu.has_threshold()) options.dead_threshold = dead_relu.threshold();
  absl::Status written =
      WriteFile(context.line.out, PlotJobSvg(events, options));
  if (!written.ok()) return ReportError(written, context.err);
  context.out << "wrote " << context.line.out << '\n';
  return kExitOk;
}

int Validate(const Context& context) {
  absl::StatusOr<v1::JobSpec> spec = ReadJobSpecFile(context.line.args[0]);
  if (!spec.ok()) return ReportError(spec.status(), context.err);
  absl::Status valid = engine::ValidateJobSpec(*spec);
  if (!valid.ok()) return ReportError(valid, context.err);
  context.out << "OK\n";
  return kExitOk;
}

int Health(const Context& context) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectTo(context.line);
  if (!client.ok()) return ReportError(client.status(), context.err);
  absl::StatusOr<ServingStatus> status = (*client)->CheckHealth("");
  if (!status.ok()) return ReportError(status.status(), context.err);
  if (context.format == OutputFormat::kJsonl) {
    context.out << R"({"status":")" << ServingStatusName(*status) << "\"}\n";
  } else {
    context.out << ServingStatusName(*status) << '\n';
  }
  return *status == ServingStatus::kServing ? kExitOk : kExitError;
}

int Help(const Context& context) {
  if (context.line.args.empty()) {
    context.out << UsageText();
    return kExitOk;
  }
  absl::StatusOr<std::string> help = SubcommandHelp(context.line.args[0]);
  if (!help.ok()) {
    context.err << "gradwatch: " << help.status().message() << '\n';
    return kExitUsage;
  }
  context.out << *help;
  return kExitOk;
}

}  // namespace

int RunCommand(const CommandLine& line, std::ostream& out, std::ostream& err,
               bool out_is_terminal, int terminal_width) {
  const bool jsonl = line.output == OutputMode::kJsonl ||
                     (line.output == OutputMode::kAuto && !out_is_terminal);
  const Context context{line,
                        out,
                        err,
                        jsonl ? OutputFormat::kJsonl : OutputFormat::kText,
                        !jsonl && out_is_terminal,
                        terminal_width};
  const std::string& command = line.command;
  if (command == "train") return Train(context);
  if (command == "submit") return Submit(context);
  if (command == "watch") return Watch(context);
  if (command == "list") return List(context);
  if (command == "get") return Get(context);
  if (command == "cancel") return Cancel(context);
  if (command == "export") return Export(context);
  if (command == "plot") return Plot(context);
  if (command == "predict") return Predict(context);
  if (command == "model") return Model(context);
  if (command == "validate") return Validate(context);
  if (command == "health") return Health(context);
  if (command == "help") return Help(context);
  err << "gradwatch: unknown subcommand '" << command << "'\n";
  return kExitUsage;
}

}  // namespace gradwatch::client
