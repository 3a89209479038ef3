#include "client/event_printer.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"

namespace gradwatch::client {
namespace {

namespace v1 = ::gradwatch::v1;

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::StrCat(R"({"error":"cannot print )", message.GetTypeName(),
                        R"( as JSON"})");
  }
  if (pretty && !json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) +
         absl::Nanoseconds(timestamp.nanos());
}

std::string FormatDuration(double seconds) {
  const int64_t total = static_cast<int64_t>(seconds + 0.5);
  if (total >= 3600) {
    return absl::StrFormat("%d:%02d:%02d", total / 3600, total / 60 % 60,
                           total % 60);
  }
  return absl::StrFormat("%d:%02d", total / 60, total % 60);
}

// The weights tensor carries the figures the table shows.
const v1::TensorStats* WeightsOf(const v1::LayerStats& layer) {
  for (const v1::TensorStats& tensor : layer.params()) {
    if (tensor.name() == "weights") return &tensor;
  }
  return layer.params().empty() ? nullptr : &layer.params(0);
}

std::string LayerLabel(const v1::LayerStats& layer) {
  return layer.name().empty() ? absl::StrCat(layer.index()) : layer.name();
}

std::string AlertLine(const v1::Alert& alert) {
  std::string where;
  if (alert.layer() >= 0) {
    where = absl::StrCat(" on layer ", alert.layer_name().empty()
                                           ? absl::StrCat(alert.layer())
                                           : alert.layer_name());
  }
  std::string line = absl::StrCat(
      alert.firing() ? "ALERT " : "resolved ",
      v1::HealthRule_Name(alert.rule()), where, ": ", alert.message(),
      absl::StrFormat(" (value %.4g, threshold %.4g)", alert.value(),
                      alert.threshold()));
  if (alert.firing() && alert.action() == v1::RuleConfig::STOP_JOB) {
    absl::StrAppend(&line, " - stopping the job");
  }
  return line;
}

std::string RunInfoLine(const v1::RunInfo& info) {
  return absl::StrCat(
      "started: ", info.steps_total(), " steps of batch ", info.batch_size(),
      ", ", info.parameters(), " parameters, ", info.train_samples(),
      " training / ", info.validation_samples(), " validation examples of ",
      info.input_features(), " features, ", info.threads(), " threads",
      info.statistics_thread() ? " (+1 for statistics), " : ", ",
      v1::TrainingSpec::Precision_Name(info.precision()), ", denormals ",
      info.denormals_flushed() ? "flushed to zero" : "kept",
      info.engine_version().empty() ? "" : ", ", info.engine_version());
}

std::vector<std::string> SummaryLines(const std::string& job_id,
                                      const v1::Summary& summary) {
  std::vector<std::string> lines;
  lines.push_back(absl::StrFormat(
      "job %s %s after %d steps (%.2f s): diagnosis %s%s%s", job_id,
      v1::JobState_Name(summary.state()), summary.steps_completed(),
      summary.train_seconds(), v1::Diagnosis_Name(summary.diagnosis()),
      summary.diagnosis_reason().empty() ? "" : " - ",
      summary.diagnosis_reason()));
  std::string metrics =
      absl::StrFormat("final loss %.4f  accuracy %.4f", summary.final_loss(),
                      summary.final_accuracy());
  if (summary.has_final_validation_loss()) {
    absl::StrAppend(&metrics,
                    absl::StrFormat("  validation loss %.4f  accuracy %.4f",
                                    summary.final_validation_loss(),
                                    summary.final_validation_accuracy()));
  }
  lines.push_back(metrics);
  if (!summary.diverged_tensor().empty()) {
    lines.push_back(absl::StrCat("diverged at step ", summary.diverged_step(),
                                 " in ", summary.diverged_tensor()));
  }
  if (!summary.error().empty()) {
    lines.push_back(absl::StrCat("error: ", summary.error()));
  }
  return lines;
}

}  // namespace

std::string ToJsonLine(const google::protobuf::Message& message) {
  return ToJson(message, /*pretty=*/false);
}

std::string ToJsonPretty(const google::protobuf::Message& message) {
  return ToJson(message, /*pretty=*/true);
}

EventPrinter::EventPrinter(std::ostream& out, PrinterOptions options)
    : out_(out), options_(options) {}

void EventPrinter::Print(const v1::JobEvent& event) {
  if (event.has_state_change()) state_ = event.state_change().state();
  if (event.has_started() && event.started().steps_total() > 0) {
    steps_total_ = event.started().steps_total();
  }
  if (event.has_summary()) {
    has_summary_ = true;
    state_ = event.summary().state();
  }
  if (event.has_stats()) {
    const absl::Time time = ToTime(event.time());
    if (!have_stats_) {
      first_step_ = event.stats().step();
      first_time_ = time;
    } else if (time > first_time_ && event.stats().step() > first_step_) {
      steps_per_second_ =
          static_cast<double>(event.stats().step() - first_step_) /
          absl::ToDoubleSeconds(time - first_time_);
    }
    last_stats_ = event.stats();
    have_stats_ = true;
  }

  if (options_.format == OutputFormat::kJsonl) {
    if (!options_.quiet || event.has_summary()) {
      out_ << ToJsonLine(event) << '\n';
      out_.flush();
    }
    return;
  }
  PrintText(event);
}

void EventPrinter::PrintText(const v1::JobEvent& event) {
  if (options_.quiet) {
    if (event.has_summary()) {
      for (const std::string& line :
           SummaryLines(event.job_id(), event.summary())) {
        out_ << line << '\n';
      }
      out_.flush();
    }
    return;
  }
  switch (event.event_case()) {
    case v1::JobEvent::kStateChange: {
      const v1::StateChange& change = event.state_change();
      // The summary already told how the job ended.
      if (has_summary_ && change.state() != v1::QUEUED &&
          change.state() != v1::RUNNING) {
        break;
      }
      EmitLine(absl::StrCat(
          "job ", event.job_id(), ": ", v1::JobState_Name(change.state()),
          change.message().empty() ? "" : " - ", change.message()));
      break;
    }
    case v1::JobEvent::kStarted:
      EmitLine(RunInfoLine(event.started()));
      break;
    case v1::JobEvent::kAlert:
      EmitLine(AlertLine(event.alert()));
      break;
    case v1::JobEvent::kStats: {
      if (!options_.live) {
        EmitLine(CompactStatsLine());
        break;
      }
      const absl::Time now = absl::Now();
      const bool last = steps_total_ > 0 && last_stats_.step() >= steps_total_;
      if (last || now - last_draw_ >= options_.min_redraw_interval) {
        EraseBlock();
        DrawBlock();
        last_draw_ = now;
      }
      break;
    }
    case v1::JobEvent::kSummary: {
      if (options_.live && have_stats_) {
        // The final figures stay on screen above the summary.
        EraseBlock();
        DrawBlock();
        block_lines_ = 0;
      }
      for (const std::string& line :
           SummaryLines(event.job_id(), event.summary())) {
        EmitLine(line);
      }
      break;
    }
    case v1::JobEvent::EVENT_NOT_SET:
      break;
  }
  out_.flush();
}

void EventPrinter::Finish() {
  block_lines_ = 0;
  out_.flush();
}

void EventPrinter::EmitLine(const std::string& line) {
  if (!options_.live) {
    out_ << line << '\n';
    return;
  }
  const bool redraw = block_lines_ > 0;
  EraseBlock();
  out_ << line << '\n';
  if (redraw) DrawBlock();
}

void EventPrinter::EraseBlock() {
  if (block_lines_ == 0) return;
  // Up to the block's first line, then clear to the end of the screen.
  out_ << "\x1b[" << block_lines_ << "A\r\x1b[J";
  block_lines_ = 0;
}

void EventPrinter::DrawBlock() {
  if (!have_stats_) return;
  const std::string block = absl::StrCat(ProgressLine(), "\n", LayerTable());
  block_lines_ = 0;
  for (absl::string_view line :
       absl::StrSplit(block, '\n', absl::SkipEmpty())) {
    // The block is ASCII: bytes are columns. The last column stays free,
    // as some terminals wrap when it is written.
    if (options_.terminal_width > 1 &&
        line.size() >= static_cast<size_t>(options_.terminal_width)) {
      line = line.substr(0, options_.terminal_width - 1);
    }
    out_ << line << '\n';
    ++block_lines_;
  }
}

std::string EventPrinter::ProgressLine() const {
  const v1::StepStats& stats = last_stats_;
  std::string line;
  if (steps_total_ > 0) {
    constexpr int kBarWidth = 24;
    const double fraction =
        std::min(1.0, static_cast<double>(stats.step()) / steps_total_);
    const int filled = static_cast<int>(fraction * kBarWidth);
    line =
        absl::StrFormat("step %d/%d [%s%s] %5.1f%%", stats.step(), steps_total_,
                        std::string(filled, '#'),
                        std::string(kBarWidth - filled, '.'), 100.0 * fraction);
  } else {
    line = absl::StrFormat("step %d", stats.step());
  }
  if (steps_per_second_ > 0) {
    absl::StrAppend(&line,
                    absl::StrFormat("  %.1f steps/s", steps_per_second_));
    if (steps_total_ > stats.step()) {
      absl::StrAppend(
          &line, "  ETA ",
          FormatDuration((steps_total_ - stats.step()) / steps_per_second_));
    }
  }
  absl::StrAppend(&line, absl::StrFormat("  loss %.4f  acc %.3f", stats.loss(),
                                         stats.accuracy()));
  if (stats.has_validation_loss()) {
    absl::StrAppend(&line, absl::StrFormat("  val loss %.4f  val acc %.3f",
                                           stats.validation_loss(),
                                           stats.validation_accuracy()));
  }
  return line;
}

std::string EventPrinter::LayerTable() const {
  size_t name_width = 5;
  for (const v1::LayerStats& layer : last_stats_.layers()) {
    name_width = std::max(name_width, LayerLabel(layer).size());
  }
  std::string table = absl::StrFormat(
      "%-*s %6s %-10s %6s %6s %10s %10s\n", name_width, "layer", "units",
      "activation", "dead", "sat", "grad norm", "update");
  for (const v1::LayerStats& layer : last_stats_.layers()) {
    const v1::TensorStats* weights = WeightsOf(layer);
    absl::StrAppend(
        &table, absl::StrFormat("%-*s %6d %-10s %6.3f %6.3f %10.3e %10.3e\n",
                                name_width, LayerLabel(layer), layer.units(),
                                v1::Activation_Name(layer.activation()),
                                layer.dead_ratio(), layer.saturated_ratio(),
                                weights ? weights->grad_l2_norm() : 0.0,
                                weights ? weights->update_ratio() : 0.0));
  }
  return table;
}

std::string EventPrinter::CompactStatsLine() const {
  const v1::StepStats& stats = last_stats_;
  std::string line =
      steps_total_ > 0
          ? absl::StrFormat("step %d/%d", stats.step(), steps_total_)
          : absl::StrFormat("step %d", stats.step());
  absl::StrAppend(&line, absl::StrFormat("  loss %.4f  acc %.3f", stats.loss(),
                                         stats.accuracy()));
  if (stats.has_validation_loss()) {
    absl::StrAppend(&line, absl::StrFormat("  val loss %.4f  val acc %.3f",
                                           stats.validation_loss(),
                                           stats.validation_accuracy()));
  }
  for (const v1::LayerStats& layer : stats.layers()) {
    const v1::TensorStats* weights = WeightsOf(layer);
    absl::StrAppend(
        &line, absl::StrFormat(" | %s dead %.3f sat %.3f grad %.3e upd %.3e",
                               LayerLabel(layer), layer.dead_ratio(),
                               layer.saturated_ratio(),
                               weights ? weights->grad_l2_norm() : 0.0,
                               weights ? weights->update_ratio() : 0.0));
  }
  return line;
}

}  // namespace gradwatch::client
