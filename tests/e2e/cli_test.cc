// The real `gradwatch` binary against a real gradwatch-server: exit codes,
// messages and the event stream as a user or a script sees them.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/trainer.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace gradwatch::e2e {
namespace {

namespace v1 = ::gradwatch::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// 2 inputs, 16 hidden ReLU units, 3 classes; 50 steps of 20 examples.
constexpr char kTinySpec[] = R"({
  "name": "tiny",
  "data": {"synthetic": {"kind": "SPIRALS", "samples": 200, "classes": 3,
                         "seed": 7}},
  "model": {"layers": [{"units": 16, "activation": "RELU"}, {"units": 3}]},
  "loss": "CROSS_ENTROPY",
  "optimizer": {"learning_rate": 0.1},
  "training": {"steps": 50, "batch_size": 20, "seed": 1}
})";

// As kTinySpec, but long enough to be cancelled while it runs or waits.
constexpr char kLongSpec[] = R"({
  "data": {"synthetic": {"kind": "SPIRALS", "samples": 200, "seed": 7}},
  "model": {"layers": [{"units": 16, "activation": "RELU"}, {"units": 3}]},
  "loss": "CROSS_ENTROPY",
  "training": {"steps": 1000000, "batch_size": 20}
})";

constexpr char kInvalidSpec[] = R"({
  "data": {"synthetic": {"kind": "SPIRALS"}},
  "model": {"layers": [{"units": 0, "activation": "RELU"}, {"units": 3}]},
  "loss": "CROSS_ENTROPY"
})";

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::vector<std::string> OutLines() const {
    return absl::StrSplit(out, '\n', absl::SkipEmpty());
  }
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// A file name of this test process: ctest may run the tests in parallel
// processes that share TempDir().
std::string TempPath(const std::string& name) {
  return absl::StrCat(testing::TempDir(), "/cli_test_", getpid(), "_", name);
}

std::string WriteTemp(const std::string& name, const std::string& contents) {
  const std::string path = TempPath(name);
  std::ofstream(path) << contents;
  return path;
}

std::string Quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// Runs gradwatch with `args`, stdout and stderr captured (neither is a
// terminal, so --output auto means jsonl).
Result Gradwatch(const std::vector<std::string>& args) {
  const char* build_dir = std::getenv("GRADWATCH_BUILD_DIR");
  EXPECT_NE(build_dir, nullptr);
  std::vector<std::string> quoted = {
      Quote(absl::StrCat(build_dir ? build_dir : ".", "/client/gradwatch"))};
  for (const std::string& arg : args) quoted.push_back(Quote(arg));
  const std::string out_path = TempPath("stdout");
  const std::string err_path = TempPath("stderr");
  const std::string command =
      absl::StrCat("env -u GRADWATCH_SERVER ", absl::StrJoin(quoted, " "),
                   " </dev/null >", Quote(out_path), " 2>", Quote(err_path));
  const int status = std::system(command.c_str());
  Result result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  return result;
}

std::unique_ptr<ServerProcess> StartServer() {
  auto server = ServerProcess::Start();
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

std::vector<v1::JobEvent> ParseEvents(const Result& result) {
  std::vector<v1::JobEvent> events;
  for (const std::string& line : result.OutLines()) {
    v1::JobEvent event;
    const auto status =
        google::protobuf::util::JsonStringToMessage(line, &event);
    EXPECT_TRUE(status.ok()) << line;
    events.push_back(event);
  }
  return events;
}

TEST(CliTest, HealthExitsZeroWhenServing) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  Result result =
      Gradwatch({"--server", server->address(), "health", "--output=text"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "SERVING\n");
}

TEST(CliTest, TrainStreamsEveryStepAndEndsWithTheSummary) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string spec = WriteTemp("tiny.json", kTinySpec);
  Result result = Gradwatch({"--server", server->address(), "train", spec});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<v1::JobEvent> events = ParseEvents(result);
  ASSERT_FALSE(events.empty());
  int stats = 0;
  int summaries = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].job_id(), events[0].job_id());
    EXPECT_EQ(events[i].sequence(), i);  // the whole history, in order
    stats += events[i].has_stats();
    summaries += events[i].has_summary();
  }
  EXPECT_EQ(stats, 50);  // stats_every defaults to every step
  ASSERT_EQ(summaries, 1);
  EXPECT_EQ(events.back().state_change().state(), v1::SUCCEEDED);

  Result quiet = Gradwatch({"--server", server->address(), "--quiet",
                            "--output", "text", "train", spec});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  const std::vector<std::string> lines = quiet.OutLines();
  ASSERT_EQ(lines.size(), 2u) << quiet.out;
  EXPECT_THAT(lines[0], StartsWith("job j-"));
  EXPECT_THAT(lines[0], HasSubstr(" SUCCEEDED after 50 steps"));
  EXPECT_THAT(lines[1], StartsWith("final loss "));
}

TEST(CliTest, InvalidSpecIsReportedWithTheFieldPath) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string spec = WriteTemp("invalid.json", kInvalidSpec);
  Result result = Gradwatch({"--server", server->address(), "train", spec});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err,
            "error: INVALID_ARGUMENT: model.layers[0].units must be in [1, "
            "65536], got 0\n");
  EXPECT_EQ(result.out, "");
  // The same verdict without a server.
  Result local = Gradwatch({"validate", spec});
  EXPECT_EQ(local.exit_code, 1);
  EXPECT_EQ(local.err, result.err);
}

TEST(CliTest, UnreachableServerHasItsOwnMessageAndExitCode) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string address = server->address();
  ASSERT_EQ(server->Stop(SIGTERM), 0);
  Result result =
      Gradwatch({"--server", address, "--connect-timeout", "2", "health"});
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_THAT(result.err,
              StartsWith(absl::StrCat("cannot reach gradwatch server at ",
                                      address, ": ")));
}

TEST(CliTest, UsageErrorsExitTwo) {
  Result unknown = Gradwatch({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err,
              StartsWith("gradwatch: unknown subcommand 'frobnicate'\n"));
  Result flag = Gradwatch({"list", "--frob"});
  EXPECT_EQ(flag.exit_code, 2);
  EXPECT_THAT(flag.err, StartsWith("gradwatch: unknown flag '--frob'\n"));
  Result help = Gradwatch({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("exit codes:"));
}

TEST(CliTest, SubmitWatchListGetPredictModel) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::vector<std::string> at = {"--server", server->address()};
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), at.begin(), at.end());
    return Gradwatch(args);
  };
  Result submitted =
      run({"submit", "--output", "text", WriteTemp("tiny.json", kTinySpec)});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = submitted.out.substr(0, submitted.out.find('\n'));
  EXPECT_THAT(job, StartsWith("j-"));

  Result watched = run({"watch", job, "--from-step", "45"});
  ASSERT_EQ(watched.exit_code, 0) << watched.err;
  for (const v1::JobEvent& event : ParseEvents(watched)) {
    EXPECT_GE(event.step(), 45u);
  }

  Result listed = run({"list", "--state", "succeeded", "--output", "text"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr(job + " "));

  Result got = run({"get", job});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  v1::Job parsed;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(got.out, &parsed).ok());
  EXPECT_EQ(parsed.state(), v1::SUCCEEDED);
  EXPECT_EQ(parsed.steps_completed(), 50u);

  const std::string rows = WriteTemp("rows.csv", "x0,x1\n0.1,0.2\n-0.5,0.3\n");
  Result predicted = run({"predict", job, rows});
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  ASSERT_EQ(predicted.OutLines().size(), 2u);
  v1::Prediction prediction;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  predicted.OutLines()[0], &prediction)
                  .ok());
  EXPECT_EQ(prediction.outputs_size(), 3);  // softmax over 3 classes

  Result model = run({"model", job});
  ASSERT_EQ(model.exit_code, 0) << model.err;
  v1::Model weights;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(model.out, &weights).ok());
  ASSERT_EQ(weights.layers_size(), 2);
  EXPECT_EQ(weights.layers(0).weights_size(), 2 * 16);

  Result missing = run({"get", "j-does-not-exist"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, StartsWith("error: NOT_FOUND: "));
}

TEST(CliTest, ExportAndPlotAFinishedJob) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string address = server->address();
  Result submitted = Gradwatch({"--server", address, "submit", "--output",
                                "text", WriteTemp("tiny.json", kTinySpec)});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = submitted.out.substr(0, submitted.out.find('\n'));

  Result csv =
      Gradwatch({"--server", address, "export", job, "--format", "csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  const std::vector<std::string> rows = csv.OutLines();
  ASSERT_GE(rows.size(), 51u);  // header + at least one row per step
  EXPECT_THAT(rows[0], StartsWith("step,epoch,loss,accuracy,"));
  EXPECT_THAT(rows[1], StartsWith("1,0,"));
  EXPECT_THAT(rows.back(), StartsWith("50,"));

  const std::string jsonl_path = TempPath("export.jsonl");
  Result jsonl =
      Gradwatch({"--server", address, "export", job, "-o", jsonl_path});
  ASSERT_EQ(jsonl.exit_code, 0) << jsonl.err;
  EXPECT_THAT(jsonl.out, HasSubstr(" to " + jsonl_path));
  Result watched = Gradwatch({"--server", address, "watch", job});
  EXPECT_EQ(ReadAll(jsonl_path), watched.out);  // the same history

  const std::string svg_path = TempPath("plot.svg");
  Result plotted =
      Gradwatch({"--server", address, "plot", job, "-o", svg_path});
  ASSERT_EQ(plotted.exit_code, 0) << plotted.err;
  const std::string svg = ReadAll(svg_path);
  EXPECT_THAT(svg, StartsWith("<svg "));
  EXPECT_THAT(svg, HasSubstr(job + " - tiny"));
  EXPECT_THAT(svg, HasSubstr("alert threshold 0.5"));
}

TEST(CliTest, CancelledJobExitsFour) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  Result submitted =
      Gradwatch({"--server", server->address(), "submit", "--output", "text",
                 WriteTemp("long.json", kLongSpec)});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = submitted.out.substr(0, submitted.out.find('\n'));
  Result cancelled = Gradwatch({"--server", server->address(), "cancel", job});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  Result watched = Gradwatch({"--server", server->address(), "--quiet",
                              "--output", "text", "watch", job});
  EXPECT_EQ(watched.exit_code, 4) << watched.out << watched.err;
  EXPECT_THAT(watched.out, HasSubstr(" CANCELLED after "));
}

// Starts gradwatch with stdout to `out_path`, SIGINT at its default.
pid_t SpawnGradwatch(const std::vector<std::string>& args,
                     const std::string& out_path) {
  const char* build_dir = std::getenv("GRADWATCH_BUILD_DIR");
  const std::string binary =
      absl::StrCat(build_dir ? build_dir : ".", "/client/gradwatch");
  std::vector<std::string> all = {binary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : all) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, binary.c_str(), &files, &attributes,
                                argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attributes);
  EXPECT_EQ(error, 0);
  return error == 0 ? pid : -1;
}

TEST(CliTest, CtrlCCancelsTheJobAndStillPrintsItsSummary) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string out_path = TempPath("interrupted");
  for (const bool local : {false, true}) {
    std::vector<std::string> args = {"--server", server->address(), "train",
                                     WriteTemp("long.json", kLongSpec)};
    if (local) args.push_back("--local");
    const pid_t pid = SpawnGradwatch(args, out_path);
    ASSERT_GT(pid, 0);
    // Interrupt once training has visibly started (bounded wait).
    for (int i = 0;
         i < 6000 && ReadAll(out_path).find("\"stats\"") == std::string::npos;
         ++i) {
      usleep(10000);
    }
    ASSERT_NE(ReadAll(out_path).find("\"stats\""), std::string::npos);
    kill(pid, SIGINT);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 4) << "local " << local;
    Result result;
    result.out = ReadAll(out_path);
    const std::vector<v1::JobEvent> events = ParseEvents(result);
    ASSERT_GE(events.size(), 2u);
    EXPECT_EQ(events[events.size() - 2].summary().state(), v1::CANCELLED);
    EXPECT_EQ(events.back().state_change().state(), v1::CANCELLED);
  }
}

TEST(CliTest, LocalTrainingPrintsTheSameStream) {
  Result result =
      Gradwatch({"train", "--local", WriteTemp("tiny.json", kTinySpec)});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<v1::JobEvent> events = ParseEvents(result);
  ASSERT_GE(events.size(), 53u);  // RUNNING, started, 50 stats, summary, end
  int stats = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].job_id(), "local");
    EXPECT_EQ(events[i].sequence(), i);
    stats += events[i].has_stats();
  }
  EXPECT_EQ(stats, 50);
  EXPECT_EQ(events.front().state_change().state(), v1::RUNNING);
  EXPECT_EQ(events[events.size() - 2].summary().state(), v1::SUCCEEDED);
  EXPECT_EQ(events.back().state_change().state(), v1::SUCCEEDED);
}

}  // namespace
}  // namespace gradwatch::e2e
