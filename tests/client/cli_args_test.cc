#include "client/cli_args.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<CommandLine> Parse(std::vector<std::string> args,
                                  std::optional<std::string> env = {}) {
  return ParseCommandLine(args, std::move(env));
}

std::string UsageErrorOf(std::vector<std::string> args) {
  absl::StatusOr<CommandLine> line = Parse(std::move(args));
  EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(line.status().message());
}

TEST(CliArgsTest, UnknownSubcommandIsAUsageError) {
  EXPECT_EQ(UsageErrorOf({"frobnicate"}), "unknown subcommand 'frobnicate'");
  EXPECT_EQ(UsageErrorOf({}), "no subcommand given");
  EXPECT_EQ(UsageErrorOf({"help", "frobnicate"}),
            "unknown subcommand 'frobnicate'");
}

TEST(CliArgsTest, UnknownFlagIsAUsageError) {
  EXPECT_EQ(UsageErrorOf({"list", "--frob"}), "unknown flag '--frob'");
  EXPECT_EQ(UsageErrorOf({"-x", "list"}), "unknown flag '-x'");
  EXPECT_EQ(UsageErrorOf({"submit", "--local", "a.json"}),
            "--local is a flag of 'train', not of 'submit'");
  EXPECT_EQ(UsageErrorOf({"list", "--quiet=yes"}), "--quiet takes no value");
  EXPECT_EQ(UsageErrorOf({"list", "--server"}),
            "--server needs a value (HOST:PORT)");
}

TEST(CliArgsTest, WrongArgumentCountShowsTheUsage) {
  EXPECT_EQ(UsageErrorOf({"train"}), "usage: gradwatch train SPEC.json");
  EXPECT_EQ(UsageErrorOf({"predict", "j-1"}),
            "usage: gradwatch predict JOB ROWS.csv");
  EXPECT_EQ(UsageErrorOf({"health", "extra"}), "usage: gradwatch health");
}

TEST(CliArgsTest, BadFlagValuesAreUsageErrors) {
  EXPECT_EQ(UsageErrorOf({"list", "--timeout", "0"}),
            "--timeout must be a positive number of seconds, got '0'");
  EXPECT_EQ(UsageErrorOf({"list", "--output", "xml"}),
            "--output must be auto, text or jsonl, got 'xml'");
  EXPECT_EQ(UsageErrorOf({"watch", "j-1", "--from-step", "-3"}),
            "--from-step must be a non-negative integer, got '-3'");
  EXPECT_THAT(UsageErrorOf({"list", "--state", "done"}),
              HasSubstr("--state must be queued, running, succeeded"));
}

TEST(CliArgsTest, ParsesFlagsBeforeAndAfterTheSubcommand) {
  absl::StatusOr<CommandLine> line =
      Parse({"--server=10.0.0.1:7000", "watch", "j-9", "--from-step", "250",
             "--output", "jsonl", "--quiet", "--timeout", "2.5",
             "--connect-timeout=2m"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->command, "watch");
  EXPECT_THAT(line->args, ElementsAre("j-9"));
  EXPECT_EQ(line->server, "10.0.0.1:7000");
  EXPECT_EQ(line->from_step, 250u);
  EXPECT_EQ(line->output, OutputMode::kJsonl);
  EXPECT_TRUE(line->quiet);
  EXPECT_EQ(line->timeout, absl::Milliseconds(2500));
  EXPECT_EQ(line->connect_timeout, absl::Minutes(2));
}

TEST(CliArgsTest, ServerComesFromTheEnvironmentUnlessGiven) {
  absl::StatusOr<CommandLine> line = Parse({"health"});
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->server, "127.0.0.1:50051");
  line = Parse({"health"}, "example.org:1234");
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->server, "example.org:1234");
  line = Parse({"health", "--server", "10.1.1.1:1"}, "example.org:1234");
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->server, "10.1.1.1:1");
}

TEST(CliArgsTest, SubcommandFlags) {
  absl::StatusOr<CommandLine> line = Parse({"train", "--local", "s.json"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_TRUE(line->local);
  EXPECT_THAT(line->args, ElementsAre("s.json"));
  line = Parse({"list", "--state", "Running"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->state, v1::RUNNING);
  // After "--" everything is an argument, even what looks like a flag.
  line = Parse({"get", "--", "--odd-id"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_THAT(line->args, ElementsAre("--odd-id"));
}

TEST(CliArgsTest, ExportAndPlotFlags) {
  absl::StatusOr<CommandLine> line =
      Parse({"export", "j-1", "--format", "csv", "-o", "stats.csv"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->format, "csv");
  EXPECT_EQ(line->out, "stats.csv");
  line = Parse({"plot", "j-1", "--out=fig.svg"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->out, "fig.svg");
  EXPECT_EQ(UsageErrorOf({"plot", "j-1"}),
            "plot needs the output file: -o FILE.svg");
  EXPECT_EQ(UsageErrorOf({"export", "j-1", "--format", "xml"}),
            "--format must be csv or jsonl, got 'xml'");
  EXPECT_EQ(UsageErrorOf({"get", "j-1", "-o", "x"}),
            "--out is a flag of 'export' and 'plot', not of 'get'");
}

TEST(CliArgsTest, HelpForms) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    absl::StatusOr<CommandLine> line = Parse(args);
    ASSERT_TRUE(line.ok()) << args[0];
    EXPECT_EQ(line->command, "help");
    EXPECT_TRUE(line->args.empty());
  }
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"help", "list"}, {"list", "--help"}, {"--help", "list"}}) {
    absl::StatusOr<CommandLine> line = Parse(args);
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(line->command, "help");
    EXPECT_THAT(line->args, ElementsAre("list"));
  }
}

TEST(CliArgsTest, HelpDescribesEverySubcommandAndFlag) {
  const std::string usage = UsageText();
  for (const char* subcommand :
       {"train", "submit", "watch", "list", "get", "cancel", "predict", "model",
        "validate", "health", "help"}) {
    EXPECT_THAT(usage, HasSubstr(absl::StrCat("\n  ", subcommand, " ")))
        << subcommand;
    absl::StatusOr<std::string> help = SubcommandHelp(subcommand);
    ASSERT_TRUE(help.ok());
    EXPECT_THAT(*help,
                HasSubstr(absl::StrCat("usage: gradwatch ", subcommand)));
  }
  for (const char* flag :
       {"--server HOST:PORT", "--timeout SECONDS", "--connect-timeout SECONDS",
        "--output auto|text|jsonl", "--quiet", "--local", "--from-step N",
        "--state STATE", "--format csv|jsonl", "--out FILE"}) {
    EXPECT_THAT(usage, HasSubstr(flag)) << flag;
  }
  EXPECT_THAT(usage,
              HasSubstr("4  the job ended FAILED, CANCELLED or INTERRUPTED"));
  EXPECT_THAT(*SubcommandHelp("watch"), HasSubstr("--from-step N"));
  EXPECT_THAT(*SubcommandHelp("train"), HasSubstr("--local"));
  EXPECT_FALSE(SubcommandHelp("frob").ok());
}

}  // namespace
}  // namespace gradwatch::client
