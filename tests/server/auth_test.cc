#include "server/auth.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/job_manager.h"
#include "server/memory_job_store.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-token-0123456789";
constexpr char kBobToken[] = "bob-token-abcdefghijkl";
constexpr char kRootToken[] = "root-token-ZYXWVUTSRQPO";

constexpr char kTokensFile[] = R"(# gradwatch tokens
alice-token-0123456789   alice

  # rotation: two tokens, one principal
bob-token-abcdefghijkl	bob   # tab-separated, trailing comment
bob-token-second-000000 bob
root-token-ZYXWVUTSRQPO root admin
)";

Authenticator Tokens() {
  absl::StatusOr<Authenticator> auth = Authenticator::Parse(kTokensFile, "t");
  EXPECT_TRUE(auth.ok()) << auth.status();
  return auth.ok() ? *std::move(auth) : Authenticator();
}

// Metadata as gRPC hands it over: the strings must outlive the map.
class Metadata {
 public:
  Metadata& Add(std::string key, std::string value) {
    pairs_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  ClientMetadata Map() const {
    ClientMetadata map;
    for (const auto& [key, value] : pairs_) {
      map.emplace(grpc::string_ref(key), grpc::string_ref(value));
    }
    return map;
  }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

ClientMetadata Bearer(const std::string& value, Metadata& metadata) {
  return metadata.Add("authorization", value).Map();
}

TEST(AuthenticatorTest, ParsesTokensSkippingCommentsAndBlankLines) {
  Authenticator auth = Tokens();
  EXPECT_TRUE(auth.requires_token());
  EXPECT_EQ(auth.token_count(), 4u);
}

TEST(AuthenticatorTest, AcceptsWindowsLineEndings) {
  auto auth = Authenticator::Parse(
      "alice-token-0123456789 alice\r\nroot-token-ZYXWVUTSRQPO root admin\r\n",
      "crlf");
  ASSERT_TRUE(auth.ok()) << auth.status();
  Metadata metadata;
  auto root =
      auth->Authenticate(Bearer(absl::StrCat("Bearer ", kRootToken), metadata));
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->name, "root");
  EXPECT_TRUE(root->admin);
}

struct MalformedCase {
  const char* text;
  const char* message;
};

TEST(AuthenticatorTest, RejectsMalformedLinesNamingTheLineAndNotTheToken) {
  const std::string good = "alice-token-0123456789 alice\n";
  const MalformedCase cases[] = {
      {"secret-token-only-0000\n", "line 2: expected TOKEN PRINCIPAL [admin]"},
      {"secret-token-four-0000 bob admin extra\n",
       "line 2: expected TOKEN PRINCIPAL [admin], got 4 fields"},
      {"secret-token-root-0000 bob root\n",
       "line 2: the third field, if any, must be the word admin"},
      {"secret bob\n",
       "line 2: the token must be 16 to 1024 characters, got 6"},
      {"secret-token-\x01"
       "ctrl-000 bob\n",
       "line 2: the token must be printable ASCII"},
      {"secret-token-0000000000 bob/../x\n",
       "line 2: the principal must be 1 to 64 of"},
      {"secret-token-0000000000 b\xc3\xb6\x62\n",
       "line 2: the principal must be 1 to 64 of"},
  };
  for (const MalformedCase& test : cases) {
    auto auth = Authenticator::Parse(good + test.text, "tokens.txt");
    ASSERT_FALSE(auth.ok()) << test.text;
    EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(auth.status().message(),
                HasSubstr(absl::StrCat("tokens.txt ", test.message)));
    EXPECT_THAT(auth.status().message(), Not(HasSubstr("secret")));
  }
}

TEST(AuthenticatorTest, RejectsARepeatedTokenNamingBothLines) {
  auto auth = Authenticator::Parse(
      "# first\nalice-token-0123456789 alice\n\n"
      "alice-token-0123456789 mallory admin\n",
      "tokens.txt");
  ASSERT_FALSE(auth.ok());
  EXPECT_EQ(auth.status().message(),
            "tokens.txt line 4: repeats the token of line 2");
}

TEST(AuthenticatorTest, RejectsAFileWithoutTokens) {
  auto auth = Authenticator::Parse("# nobody yet\n\n", "tokens.txt");
  ASSERT_FALSE(auth.ok());
  EXPECT_THAT(auth.status().message(), HasSubstr("holds no tokens"));
}

TEST(AuthenticatorTest, ReadsAFileAndReportsAMissingOne) {
  const std::string path =
      absl::StrCat(testing::TempDir(), "/auth_test_tokens");
  std::ofstream(path) << kTokensFile;
  auto auth = Authenticator::FromFile(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(auth->token_count(), 4u);
  auto missing = Authenticator::FromFile(path + ".missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("No such file or directory"));
}

TEST(AuthenticatorTest, WithoutTokensEveryCallerIsTheAnonymousAdmin) {
  Authenticator open;
  EXPECT_FALSE(open.requires_token());
  Metadata none;
  auto caller = open.Authenticate(none.Map());
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->name, "");
  EXPECT_TRUE(caller->admin);
  Metadata wrong;
  EXPECT_TRUE(open.Authenticate(Bearer("Bearer nonsense", wrong)).ok());
}

TEST(AuthenticatorTest, RefusesMissingMalformedAndWrongTokens) {
  Authenticator auth = Tokens();
  const std::string alice = kAliceToken;
  struct Case {
    std::vector<std::pair<std::string, std::string>> metadata;
    const char* message;
  };
  const Case cases[] = {
      {{}, "this server needs a token"},
      {{{"x-other", "Bearer " + alice}}, "this server needs a token"},
      {{{"authorization", alice}}, "must be 'Bearer TOKEN'"},
      {{{"authorization", "Basic " + alice}}, "must be 'Bearer TOKEN'"},
      {{{"authorization", "Bearer"}}, "must be 'Bearer TOKEN'"},
      {{{"authorization", "Bearer "}}, "not valid"},
      {{{"authorization", "Bearer wrong-token-0123456789"}}, "not valid"},
      // A prefix, an extension and another case of a real token.
      {{{"authorization", "Bearer " + alice.substr(0, alice.size() - 1)}},
       "not valid"},
      {{{"authorization", "Bearer " + alice + "0"}}, "not valid"},
      {{{"authorization", "Bearer ALICE-TOKEN-0123456789"}}, "not valid"},
      {{{"authorization", "Bearer " + alice},
        {"authorization", "Bearer " + alice}},
       "more than one"},
  };
  for (const Case& test : cases) {
    Metadata metadata;
    for (const auto& [key, value] : test.metadata) metadata.Add(key, value);
    auto caller = auth.Authenticate(metadata.Map());
    ASSERT_FALSE(caller.ok()) << test.message;
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(caller.status().message(), HasSubstr(test.message));
    EXPECT_THAT(caller.status().message(), Not(HasSubstr("token-")));
  }
}

TEST(AuthenticatorTest, MapsEachTokenToItsPrincipal) {
  Authenticator auth = Tokens();
  Metadata alice_metadata;
  auto alice = auth.Authenticate(
      Bearer(absl::StrCat("Bearer ", kAliceToken), alice_metadata));
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  EXPECT_FALSE(alice->admin);

  // The scheme is case-insensitive; extra spaces around the token are not
  // part of it.
  Metadata bob_metadata;
  auto bob = auth.Authenticate(
      Bearer(absl::StrCat("bearer  ", kBobToken, " "), bob_metadata));
  ASSERT_TRUE(bob.ok()) << bob.status();
  EXPECT_EQ(bob->name, "bob");
  Metadata rotated_metadata;
  auto rotated = auth.Authenticate(
      Bearer("Bearer bob-token-second-000000", rotated_metadata));
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(rotated->name, "bob");

  Metadata root_metadata;
  auto root = auth.Authenticate(
      Bearer(absl::StrCat("Bearer ", kRootToken), root_metadata));
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->name, "root");
  EXPECT_TRUE(root->admin);
}

TEST(PrincipalTest, AdminsReachEveryJobOthersTheirOwn) {
  const Principal alice{"alice", false};
  EXPECT_TRUE(alice.CanAccess("alice"));
  EXPECT_FALSE(alice.CanAccess("bob"));
  EXPECT_FALSE(alice.CanAccess(""));
  EXPECT_TRUE(Principal::AnonymousAdmin().CanAccess("bob"));
  EXPECT_TRUE(Principal::AnonymousAdmin().CanAccess(""));
}

// JobManager: the owner is recorded and stored, and another principal's
// job is NOT_FOUND exactly as an unknown one.
v1::JobSpec ShortSpec() {
  v1::JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        data { synthetic { kind: SPIRALS samples: 200 classes: 3 seed: 7 } }
        model {
          layers { units: 16 activation: RELU }
          layers { units: 3 }
        }
        loss: CROSS_ENTROPY
        training { steps: 20 batch_size: 20 seed: 1 threads: 1 }
      )pb",
      &spec));
  return spec;
}

// The message with the id replaced, to compare answers about two ids.
std::string Shape(const absl::Status& status, const std::string& id) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                      absl::StrReplaceAll(status.message(), {{id, "ID"}}));
}

TEST(JobAccessTest, OthersJobsAreNotFoundLikeUnknownOnes) {
  MemoryJobStore store;
  JobManagerOptions options;
  options.job_threads = 1;
  auto manager = JobManager::Create(options, &store);
  ASSERT_TRUE(manager.ok()) << manager.status();
  auto bobs = (*manager)->Submit(ShortSpec(), "bob");
  ASSERT_TRUE(bobs.ok()) << bobs.status();
  EXPECT_EQ(bobs->owner(), "bob");
  auto alices = (*manager)->Submit(ShortSpec(), "alice");
  ASSERT_TRUE(alices.ok()) << alices.status();

  const Principal alice{"alice", false};
  const std::string bob_id = bobs->id();
  const std::string unknown_id = "j-0000000000000000";
  const std::string expected =
      Shape((*manager)->Get(unknown_id, false, alice).status(), unknown_id);
  EXPECT_EQ(expected, "NOT_FOUND: job \"ID\" not found");
  EXPECT_EQ(Shape((*manager)->Get(bob_id, true, alice).status(), bob_id),
            expected);
  EXPECT_EQ(Shape((*manager)->History(bob_id, alice).status(), bob_id),
            expected);
  EXPECT_EQ(Shape((*manager)->GetModel(bob_id, alice).status(), bob_id),
            expected);
  v1::PredictRequest predict;
  predict.set_job_id(bob_id);
  predict.add_inputs()->add_x(0.5f);
  EXPECT_EQ(Shape((*manager)->Predict(predict, alice).status(), bob_id),
            expected);
  EXPECT_EQ(Shape((*manager)->Cancel(bob_id, alice).status(), bob_id),
            expected);

  auto listed = (*manager)->List(v1::ListJobsRequest(), alice);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->jobs_size(), 1);
  EXPECT_EQ(listed->jobs(0).id(), alices->id());
  auto all = (*manager)->List(v1::ListJobsRequest(), Principal{"ops", true});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->jobs_size(), 2);
  auto own = (*manager)->Get(alices->id(), false, alice);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->owner(), "alice");

  // The stored record carries the owner, so that it survives a restart.
  (*manager)->Shutdown(absl::ZeroDuration());
  auto stored = store.LoadAll();
  ASSERT_TRUE(stored.ok());
  std::vector<std::string> owners;
  for (const auto& job : *stored) owners.push_back(job.job.owner());
  EXPECT_THAT(owners, ::testing::UnorderedElementsAre("alice", "bob"));
}

}  // namespace
}  // namespace gradwatch::server
