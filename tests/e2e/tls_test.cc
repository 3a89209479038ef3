// TLS and mutual TLS end to end: a throwaway CA, server and client
// certificates made with the `openssl` command at test time; a real
// server, real gRPC clients and the real CLI. Also the startup checks of
// the TLS flags and the warning of a server exposed beyond loopback.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace gradwatch::e2e {
namespace {

namespace v1 = ::gradwatch::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-tls-token-7f3e9a1b2c";

constexpr char kTinySpec[] = R"({
  "name": "tls-tiny",
  "data": {"synthetic": {"kind": "SPIRALS", "samples": 200, "classes": 3,
                         "seed": 7}},
  "model": {"layers": [{"units": 16, "activation": "RELU"}, {"units": 3}]},
  "loss": "CROSS_ENTROPY",
  "training": {"steps": 30, "batch_size": 20, "seed": 1, "threads": 1}
})";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Single-quoted for /bin/sh.
std::string Quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) {
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return quoted + "'";
}

// A CA, a server certificate for 127.0.0.1 and localhost, and a client
// certificate, all signed by the CA; and a second CA with its own client
// certificate, which the server must not trust. P-256 keys, valid 2 days.
class Pki {
 public:
  static std::unique_ptr<Pki> Make(std::string* error) {
    char dir_template[] = "/tmp/gradwatch-tls-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) {
      *error = "mkdtemp failed";
      return nullptr;
    }
    std::unique_ptr<Pki> pki(new Pki(dir_template));
    const std::string ext = pki->Path("server.ext");
    std::ofstream(ext) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                       << "extendedKeyUsage=serverAuth\n";
    std::ofstream(pki->Path("client.ext")) << "extendedKeyUsage=clientAuth\n";
    const bool made = pki->MakeCa("ca") && pki->MakeCa("rogue-ca") &&
                      pki->MakeSigned("server", "ca", "localhost", 2) &&
                      pki->MakeSigned("client", "ca", "alice", 3) &&
                      pki->MakeSigned("rogue-client", "rogue-ca", "mallory", 4);
    if (!made) {
      *error = absl::StrCat(
          "openssl failed (is the openssl command "
          "installed?):\n",
          ReadAll(pki->Path("openssl.log")));
      return nullptr;
    }
    return pki;
  }
  ~Pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string Path(const std::string& name) const {
    return absl::StrCat(dir_, "/", name);
  }
  std::string Pem(const std::string& name) const { return ReadAll(Path(name)); }

 private:
  explicit Pki(std::string dir) : dir_(std::move(dir)) {}

  bool Run(const std::vector<std::string>& args) const {
    std::vector<std::string> quoted;
    for (const std::string& arg : args) quoted.push_back(Quote(arg));
    const std::string command =
        absl::StrCat("openssl ", absl::StrJoin(quoted, " "), " >>",
                     Quote(Path("openssl.log")), " 2>&1");
    return std::system(command.c_str()) == 0;
  }
  bool MakeCa(const std::string& name) const {
    return Run({"req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                Path(name + ".key"), "-out", Path(name + ".crt"), "-days", "2",
                "-subj", "/CN=gradwatch test " + name});
  }
  bool MakeSigned(const std::string& name, const std::string& ca,
                  const std::string& common_name, int serial) const {
    const std::string ext = name == "server" ? "server.ext" : "client.ext";
    return Run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", Path(name + ".key"), "-out",
                Path(name + ".csr"), "-subj", "/CN=" + common_name}) &&
           Run({"x509", "-req", "-in", Path(name + ".csr"), "-CA",
                Path(ca + ".crt"), "-CAkey", Path(ca + ".key"), "-set_serial",
                absl::StrCat(serial), "-days", "2", "-extfile", Path(ext),
                "-out", Path(name + ".crt")});
  }

  const std::string dir_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    pki_ = Pki::Make(&error).release();
    if (pki_ == nullptr) error_ = new std::string(error);
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(pki_, nullptr) << *error_; }

  std::vector<std::string> ServerTlsFlags() const {
    return {"--tls_cert=" + pki_->Path("server.crt"),
            "--tls_key=" + pki_->Path("server.key")};
  }
  std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& flags) {
    auto server = ServerProcess::StartCapturingStderr(flags);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }
  // TLS credentials trusting `ca`, with the client certificate `client`
  // unless it is empty.
  static std::shared_ptr<grpc::ChannelCredentials> Tls(
      const std::string& ca, const std::string& client = "") {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->Pem(ca + ".crt");
    if (!client.empty()) {
      options.pem_cert_chain = pki_->Pem(client + ".crt");
      options.pem_private_key = pki_->Pem(client + ".key");
    }
    return grpc::SslCredentials(options);
  }

  static Pki* pki_;
  static std::string* error_;
};

Pki* TlsTest::pki_ = nullptr;
std::string* TlsTest::error_ = nullptr;

// GetJob of an unknown id: NOT_FOUND means the call got through (TLS and
// all); UNAVAILABLE that the connection was refused.
grpc::StatusCode Probe(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::Trainer::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  v1::GetJobRequest request;
  request.set_job_id("j-0000000000000000");
  v1::Job job;
  return stub->GetJob(&context, request, &job).error_code();
}

TEST_F(TlsTest, ATlsClientTrainsAJobAndChecksHealth) {
  auto server = Start(ServerTlsFlags());
  ASSERT_NE(server, nullptr);
  auto channel = server->Channel(Tls("ca"));
  auto stub = v1::Trainer::NewStub(channel);
  v1::TrainRequest request;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  kTinySpec, request.mutable_spec())
                  .ok());
  grpc::ClientContext context;
  auto reader = stub->Train(&context, request);
  v1::JobEvent event;
  int stats = 0;
  v1::JobState final_state = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    stats += event.has_stats();
    if (event.has_summary()) final_state = event.summary().state();
  }
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stats, 30);
  EXPECT_EQ(final_state, v1::SUCCEEDED);

  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health
                  ->Check(&health_context,
                          grpc::health::v1::HealthCheckRequest(), &response)
                  .ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(TlsTest, PlaintextAndUntrustingClientsAreRefused) {
  auto server = Start(ServerTlsFlags());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Probe(server->Channel()), grpc::StatusCode::UNAVAILABLE);
  // A client that does not trust the server's CA refuses the server.
  EXPECT_EQ(Probe(server->Channel(Tls("rogue-ca"))),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Probe(server->Channel(Tls("ca"))), grpc::StatusCode::NOT_FOUND);
}

TEST_F(TlsTest, MutualTlsAcceptsOnlyClientsWithACertificateOfTheCa) {
  std::vector<std::string> flags = ServerTlsFlags();
  flags.push_back("--tls_client_ca=" + pki_->Path("ca.crt"));
  auto server = Start(flags);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Probe(server->Channel(Tls("ca"))), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Probe(server->Channel(Tls("ca", "rogue-client"))),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Probe(server->Channel(Tls("ca", "client"))),
            grpc::StatusCode::NOT_FOUND);
}

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the gradwatch CLI with `args`; GRADWATCH_TOKEN is `token_env`
// when given, else unset.
CliResult Gradwatch(const std::vector<std::string>& args,
                    const std::string& token_env = "") {
  const char* build_dir = std::getenv("GRADWATCH_BUILD_DIR");
  EXPECT_NE(build_dir, nullptr);
  std::vector<std::string> quoted = {
      Quote(absl::StrCat(build_dir ? build_dir : ".", "/client/gradwatch"))};
  for (const std::string& arg : args) quoted.push_back(Quote(arg));
  const std::string base =
      absl::StrCat(testing::TempDir(), "/tls_test_", getpid());
  const std::string command = absl::StrCat(
      "env -u GRADWATCH_SERVER -u GRADWATCH_TOKEN ",
      token_env.empty() ? "" : "GRADWATCH_TOKEN=" + Quote(token_env) + " ",
      absl::StrJoin(quoted, " "), " >", Quote(base + ".out"), " 2>",
      Quote(base + ".err"));
  const int status = std::system(command.c_str());
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadAll(base + ".out");
  result.err = ReadAll(base + ".err");
  return result;
}

TEST_F(TlsTest, TheCliSubmitsAndWatchesOverMutualTlsWithAToken) {
  const std::string tokens = pki_->Path("tokens");
  std::ofstream(tokens) << kAliceToken << " alice\n";
  const std::string spec = pki_->Path("tiny.json");
  std::ofstream(spec) << kTinySpec;
  std::vector<std::string> flags = ServerTlsFlags();
  flags.push_back("--tls_client_ca=" + pki_->Path("ca.crt"));
  flags.push_back("--auth_tokens_file=" + tokens);
  auto server = Start(flags);
  ASSERT_NE(server, nullptr);
  const std::vector<std::string> tls = {"--server",   server->address(),
                                        "--tls_ca",   pki_->Path("ca.crt"),
                                        "--tls_cert", pki_->Path("client.crt"),
                                        "--tls_key",  pki_->Path("client.key")};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), tls.begin(), tls.end());
    return args;
  };

  CliResult submitted = Gradwatch(
      with({"submit", spec, "--output", "text", "--token", kAliceToken}));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id = submitted.out.substr(0, submitted.out.find('\n'));
  ASSERT_EQ(id.size(), 18u) << submitted.out;
  CliResult watched = Gradwatch(
      with({"watch", id, "--output", "jsonl", "--token", kAliceToken}));
  ASSERT_EQ(watched.exit_code, 0) << watched.err;
  EXPECT_THAT(watched.out, HasSubstr("\"state\":\"SUCCEEDED\""));

  // GRADWATCH_TOKEN is used without --token, and --token wins over it.
  CliResult env_only = Gradwatch(with({"get", id}), kAliceToken);
  EXPECT_EQ(env_only.exit_code, 0) << env_only.err;
  EXPECT_THAT(env_only.out, HasSubstr("\"owner\":\"alice\""));
  CliResult flag_wins = Gradwatch(with({"get", id, "--token", kAliceToken}),
                                  "wrong-token-000000000");
  EXPECT_EQ(flag_wins.exit_code, 0) << flag_wins.err;
  CliResult wrong_flag = Gradwatch(
      with({"get", id, "--token", "wrong-token-000000000"}), kAliceToken);
  EXPECT_EQ(wrong_flag.exit_code, 1);
  EXPECT_THAT(wrong_flag.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(wrong_flag.err, Not(HasSubstr("wrong-token")));

  // Without TLS the CLI cannot reach the server; with a key and no
  // certificate it does not try.
  CliResult plaintext = Gradwatch(
      {"list", "--server", server->address(), "--token", kAliceToken});
  EXPECT_EQ(plaintext.exit_code, 3) << plaintext.err;
  CliResult half = Gradwatch({"list", "--server", server->address(),
                              "--tls-key", pki_->Path("client.key")});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.err, HasSubstr("--tls-key needs --tls-cert"));

  server->Stop(SIGTERM);
  EXPECT_THAT(server->Stderr(), Not(HasSubstr(kAliceToken)));
}

TEST_F(TlsTest, BadTlsFlagsStopTheServerNamingTheFlag) {
  const std::string cert = pki_->Path("server.crt");
  const std::string key = pki_->Path("server.key");
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const Case cases[] = {
      {{"--tls_key=" + key}, "--tls_key needs --tls_cert"},
      {{"--tls_cert=" + cert}, "--tls_cert needs --tls_key"},
      {{"--tls_client_ca=" + pki_->Path("ca.crt")},
       "--tls_client_ca needs --tls_cert and --tls_key"},
      {{"--tls_cert=" + cert, "--tls_key=" + pki_->Path("missing.key")},
       "--tls_key: cannot read " + pki_->Path("missing.key")},
      {{"--tls_cert=" + key, "--tls_key=" + key},
       "--tls_cert: " + key + " holds no PEM certificate"},
      {{"--tls_cert=" + cert, "--tls_key=" + key,
        "--tls_client_ca=" + pki_->Path("client.key")},
       "--tls_client_ca: " + pki_->Path("client.key") +
           " holds no PEM certificate"},
  };
  for (const Case& test : cases) {
    auto server = ServerProcess::StartCapturingStderr(test.flags);
    ASSERT_FALSE(server.ok()) << test.message;
    EXPECT_THAT(server.status().message(), HasSubstr("exited with 2"));
    EXPECT_THAT(server.status().message(), HasSubstr(test.message));
  }
  // A key that is not the certificate's: refused at startup too.
  auto mismatched = ServerProcess::StartCapturingStderr(
      {"--tls_cert=" + cert, "--tls_key=" + pki_->Path("client.key")});
  ASSERT_FALSE(mismatched.ok());
  EXPECT_THAT(mismatched.status().message(),
              HasSubstr("is --tls_key the key of --tls_cert?"));
}

// The warning is about the listening address, so these servers listen on
// every interface (port 0, reached through 127.0.0.1). The server takes
// SIGTERM only once it waits for signals, after its startup lines: a
// stopped server has written its warning.
TEST(ExposureWarningTest, AServerBeyondLoopbackSaysWhatItLacks) {
  auto open = ServerProcess::StartCapturingStderr({"--listen=0.0.0.0:0"});
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ(Probe((*open)->Channel()), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ((*open)->Stop(SIGTERM), 0);
  const std::string log = (*open)->Stderr();
  EXPECT_THAT(
      log,
      HasSubstr(absl::StrCat(
          "gradwatch-server: WARNING: listening on 0.0.0.0:", (*open)->port(),
          " without TLS (--tls_cert, --tls_key) and without "
          "authentication (--auth_tokens_file)")));

  auto loopback = ServerProcess::StartCapturingStderr();
  ASSERT_TRUE(loopback.ok()) << loopback.status();
  (*loopback)->Stop(SIGTERM);
  EXPECT_THAT((*loopback)->Stderr(), Not(HasSubstr("WARNING")));
}

TEST_F(TlsTest, ExposureWarningNamesOnlyWhatIsMissing) {
  const std::string tokens = pki_->Path("warning-tokens");
  std::ofstream(tokens) << kAliceToken << " alice\n";
  struct Case {
    std::vector<std::string> flags;
    std::string expected;  // empty: no warning
  };
  std::vector<std::string> tls_only = ServerTlsFlags();
  std::vector<std::string> both = ServerTlsFlags();
  both.push_back("--auth_tokens_file=" + tokens);
  const Case cases[] = {
      {{"--auth_tokens_file=" + tokens},
       "without TLS (--tls_cert, --tls_key): bearer tokens"},
      {tls_only, "without authentication (--auth_tokens_file): anyone"},
      {both, ""},
  };
  for (const Case& test : cases) {
    std::vector<std::string> flags = test.flags;
    flags.push_back("--listen=0.0.0.0:0");
    auto server = Start(flags);
    ASSERT_NE(server, nullptr);
    server->Stop(SIGTERM);
    const std::string log = server->Stderr();
    if (test.expected.empty()) {
      EXPECT_THAT(log, Not(HasSubstr("WARNING")));
    } else {
      EXPECT_THAT(log, HasSubstr(test.expected));
      EXPECT_EQ(log.find("WARNING"), log.rfind("WARNING")) << "one line";
    }
  }
}

}  // namespace
}  // namespace gradwatch::e2e
