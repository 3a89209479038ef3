#include "client/event_printer.h"

#include <algorithm>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::JobEvent Event(const std::string& text) {
  v1::JobEvent event;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &event))
      << text;
  return event;
}

// Step `step` of a 2-layer job at `seconds` after the epoch.
v1::JobEvent StatsEvent(int step, int seconds) {
  v1::JobEvent event = Event(R"pb(
    job_id: "j-1"
    stats {
      loss: 0.693147
      accuracy: 0.5
      layers {
        index: 0
        name: "0"
        activation: RELU
        units: 64
        dead_units: 16
        dead_ratio: 0.25
        saturated_ratio: 0
        params { name: "bias" grad_l2_norm: 9 update_ratio: 9 }
        params { name: "weights" grad_l2_norm: 0.012341 update_ratio: 0.003 }
      }
      layers {
        index: 1
        name: "out"
        activation: LINEAR
        units: 3
        params { name: "weights" grad_l2_norm: 0.5 update_ratio: 2.5e-4 }
      }
    }
  )pb");
  event.set_step(step);
  event.mutable_stats()->set_step(step);
  event.mutable_time()->set_seconds(1700000000 + seconds);
  return event;
}

TEST(EventPrinterTest, JsonlWritesOneProtobufJsonLinePerEvent) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kJsonl});
  printer.Print(Event(R"pb(
    job_id: "j-1"
    sequence: 7
    step: 42
    time { seconds: 1704164645 }
    alert {
      rule: DEAD_RELU
      layer: 0
      layer_name: "0"
      firing: true
      value: 0.75
      threshold: 0.5
      action: NONE
      message: "75% of the units are dead"
    }
  )pb"));
  EXPECT_EQ(out.str(),
            R"({"job_id":"j-1","sequence":"7","step":"42",)"
            R"("alert":{"rule":"DEAD_RELU","layer":0,"layer_name":"0",)"
            R"("firing":true,"value":0.75,"threshold":0.5,"action":"NONE",)"
            R"("message":"75% of the units are dead"},)"
            R"("time":"2024-01-02T03:04:05Z"})"
            "\n");
}

TEST(EventPrinterTest, JsonlKeepsFieldsAtZero) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kJsonl});
  printer.Print(StatsEvent(10, 0));
  // A layer with no saturated unit still reports it, for scripts.
  EXPECT_THAT(out.str(), HasSubstr(R"("saturated_ratio":0,)"));
  EXPECT_THAT(out.str(), HasSubstr(R"("dead_ratio":0.25,)"));
  EXPECT_EQ(out.str().find('\n'), out.str().size() - 1);
}

TEST(EventPrinterTest, QuietJsonlPrintsOnlyTheSummary) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kJsonl, .quiet = true});
  printer.Print(StatsEvent(10, 0));
  printer.Print(Event(R"pb(job_id: "j-1"
                           summary { state: SUCCEEDED })pb"));
  EXPECT_EQ(out.str(),
            R"({"job_id":"j-1","sequence":"0","step":"0","summary":{)"
            R"("state":"SUCCEEDED","diagnosis":"DIAGNOSIS_UNSPECIFIED",)"
            R"("diagnosis_reason":"","steps_completed":"0","final_loss":0,)"
            R"("final_accuracy":0,"train_seconds":0,"diverged_step":"0",)"
            R"("diverged_tensor":"","error":""}})"
            "\n");
  EXPECT_EQ(printer.state(), v1::SUCCEEDED);
}

TEST(EventPrinterTest, LiveTableShowsTheLayerFigures) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kText,
                             .live = true,
                             .min_redraw_interval = absl::ZeroDuration()});
  printer.Print(Event(R"pb(job_id: "j-1"
                           started { steps_total: 100 })pb"));
  printer.Print(StatsEvent(10, 0));
  const std::string first = out.str();
  EXPECT_THAT(first, HasSubstr("started: 100 steps"));
  EXPECT_THAT(first,
              HasSubstr("step 10/100 [##......................]  10.0%"));
  EXPECT_THAT(first, HasSubstr("loss 0.6931  acc 0.500"));
  // The weights tensor's figures, not the bias's.
  EXPECT_THAT(
      first,
      HasSubstr(
          "0         64 RELU        0.250  0.000  1.234e-02  3.000e-03\n"));
  EXPECT_THAT(
      first,
      HasSubstr(
          "out        3 LINEAR      0.000  0.000  5.000e-01  2.500e-04\n"));

  // One second and ten steps later: 10 steps/s, 80 steps left.
  out.str("");
  printer.Print(StatsEvent(20, 1));
  const std::string second = out.str();
  // The 4-line block (progress, header, 2 layers) is redrawn in place.
  EXPECT_THAT(second, testing::StartsWith("\x1b[4A\r\x1b[J"));
  EXPECT_THAT(second, HasSubstr("step 20/100"));
  EXPECT_THAT(second, HasSubstr("10.0 steps/s  ETA 0:08"));
}

TEST(EventPrinterTest, LiveLinesAreCutToTheTerminalWidth) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kText,
                             .live = true,
                             .terminal_width = 40,
                             .min_redraw_interval = absl::ZeroDuration()});
  printer.Print(Event(R"pb(job_id: "j-1"
                           started { steps_total: 100 })pb"));
  out.str("");
  printer.Print(StatsEvent(10, 0));
  // 4 lines, none wider than 39 columns, so that the redraw can count rows.
  const std::string block = out.str();
  EXPECT_EQ(std::count(block.begin(), block.end(), '\n'), 4);
  size_t start = 0;
  for (size_t end = block.find('\n'); end != std::string::npos;
       start = end + 1, end = block.find('\n', start)) {
    EXPECT_LE(end - start, 39u) << block.substr(start, end - start);
  }
  EXPECT_THAT(block,
              testing::StartsWith("step 10/100 [##......................]"));
  out.str("");
  printer.Print(StatsEvent(20, 1));
  EXPECT_THAT(out.str(), testing::StartsWith("\x1b[4A\r\x1b[J"));
}

TEST(EventPrinterTest, LiveAlertIsPrintedAboveTheTable) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kText,
                             .live = true,
                             .min_redraw_interval = absl::ZeroDuration()});
  printer.Print(StatsEvent(10, 0));
  out.str("");
  printer.Print(Event(R"pb(
    job_id: "j-1"
    alert {
      rule: DEAD_RELU
      layer: 0
      layer_name: "0"
      firing: true
      value: 0.75
      threshold: 0.5
      action: STOP_JOB
      message: "dead units"
    }
  )pb"));
  EXPECT_THAT(out.str(),
              testing::StartsWith(
                  "\x1b[4A\r\x1b[JALERT DEAD_RELU on layer 0: dead units "
                  "(value 0.75, threshold 0.5) - stopping the job\nstep 10"));
}

TEST(EventPrinterTest, PlainTextWritesALinePerStepAndTheSummary) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kText});
  printer.Print(Event(R"pb(job_id: "j-1"
                           started { steps_total: 100 })pb"));
  printer.Print(StatsEvent(10, 0));
  printer.Print(Event(R"pb(
    job_id: "j-1"
    summary {
      state: FAILED
      diagnosis: STALLED_DEAD_UNITS
      diagnosis_reason: "layer 0 is dead"
      steps_completed: 100
      final_loss: 1.0986
      final_accuracy: 0.33
      train_seconds: 1.5
      error: "rule DEAD_RELU stopped the job"
    }
  )pb"));
  printer.Print(Event(R"pb(job_id: "j-1"
                           state_change { state: FAILED })pb"));
  EXPECT_EQ(
      out.str(),
      "started: 100 steps of batch 0, 0 parameters, 0 training / 0 "
      "validation examples of 0 features, 0 threads, PRECISION_UNSPECIFIED, "
      "denormals kept\n"
      "step 10/100  loss 0.6931  acc 0.500 | 0 dead 0.250 sat 0.000 grad "
      "1.234e-02 upd 3.000e-03 | out dead 0.000 sat 0.000 grad 5.000e-01 upd "
      "2.500e-04\n"
      "job j-1 FAILED after 100 steps (1.50 s): diagnosis STALLED_DEAD_UNITS "
      "- layer 0 is dead\n"
      "final loss 1.0986  accuracy 0.3300\n"
      "error: rule DEAD_RELU stopped the job\n");
  EXPECT_EQ(printer.state(), v1::FAILED);
  EXPECT_TRUE(printer.has_summary());
}

TEST(EventPrinterTest, QuietTextPrintsOnlyTheSummary) {
  std::ostringstream out;
  EventPrinter printer(out, {.format = OutputFormat::kText, .quiet = true});
  printer.Print(StatsEvent(10, 0));
  EXPECT_EQ(out.str(), "");
  printer.Print(
      Event(R"pb(job_id: "j-2"
                 summary { state: SUCCEEDED diagnosis: CONVERGED })pb"));
  EXPECT_THAT(out.str(), HasSubstr("job j-2 SUCCEEDED after 0 steps"));
  EXPECT_THAT(out.str(), Not(HasSubstr("step 10")));
}

}  // namespace
}  // namespace gradwatch::client
