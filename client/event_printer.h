#ifndef GRADWATCH_CLIENT_EVENT_PRINTER_H_
#define GRADWATCH_CLIENT_EVENT_PRINTER_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "gradwatch/v1/events.pb.h"

namespace gradwatch::client {

/// How events and results are written.
enum class OutputFormat {
  /// For people: progress, tables, sentences.
  kText,
  /// For programs: one protobuf-JSON object per line.
  kJsonl,
};

struct PrinterOptions {
  OutputFormat format = OutputFormat::kText;
  /// Text only: keep a progress line and a per-layer table at the bottom of
  /// a terminal, redrawn in place with ANSI escapes. Without it, text
  /// output is one line per statistics event.
  bool live = false;
  /// Only the outcome: the summary (text) or the summary event (jsonl).
  bool quiet = false;
  /// Live mode: lines of the redrawn block are cut to this many columns, so
  /// that none wraps (a wrapped line would break the redraw); 0 = no limit.
  int terminal_width = 0;
  /// Live mode redraws at most this often (the last step is always drawn).
  absl::Duration min_redraw_interval = absl::Milliseconds(100);
};

/// One line of protobuf JSON: proto field names, enums by name, fields at
/// their default value included (a healthy layer shows "dead_ratio": 0).
std::string ToJsonLine(const google::protobuf::Message& message);

/// The same, indented for reading.
std::string ToJsonPretty(const google::protobuf::Message& message);

/// Renders a job's event stream (Train, WatchJob or a local run) on an
/// output stream. Not thread-safe: feed it from one thread.
class EventPrinter {
 public:
  EventPrinter(std::ostream& out, PrinterOptions options);

  /// The job's total steps when known before its RunInfo arrives (a watch
  /// from a later step does not replay the "started" event).
  void set_steps_total(uint64_t steps_total) { steps_total_ = steps_total; }

  void Print(const gradwatch::v1::JobEvent& event);

  /// Ends the live display; call once after the last event.
  void Finish();

  /// The job's state as last reported (summary or state change);
  /// JOB_STATE_UNSPECIFIED until one arrives.
  gradwatch::v1::JobState state() const { return state_; }
  /// True once a summary event was seen.
  bool has_summary() const { return has_summary_; }

 private:
  void PrintText(const gradwatch::v1::JobEvent& event);
  // Writes a permanent line above the live block.
  void EmitLine(const std::string& line);
  void EraseBlock();
  void DrawBlock();
  std::string ProgressLine() const;
  std::string LayerTable() const;
  std::string CompactStatsLine() const;

  std::ostream& out_;
  const PrinterOptions options_;
  gradwatch::v1::JobState state_ = gradwatch::v1::JOB_STATE_UNSPECIFIED;
  bool has_summary_ = false;
  uint64_t steps_total_ = 0;
  gradwatch::v1::StepStats last_stats_;
  bool have_stats_ = false;
  // Throughput from event times, not the local clock, so that a replayed
  // history shows the rate the job actually ran at.
  uint64_t first_step_ = 0;
  absl::Time first_time_;
  double steps_per_second_ = 0;
  int block_lines_ = 0;
  absl::Time last_draw_ = absl::InfinitePast();
};

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_EVENT_PRINTER_H_
