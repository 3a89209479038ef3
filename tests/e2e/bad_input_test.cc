// Bad input through a real server: oversized messages, absurd shapes,
// non-finite data, empty datasets, labels and label columns out of range.
// Each case is refused with the documented code (INVALID_ARGUMENT for a
// spec outside its ranges, RESOURCE_EXHAUSTED for one over the server's
// limits) and a message naming the field; no case creates a job, and the
// server keeps serving without ever growing large.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/trainer_calls.h"

namespace gradwatch::e2e {
namespace {

namespace v1 = ::gradwatch::v1;
using ::testing::HasSubstr;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kMaxMessageBytes = 4 << 20;
constexpr int64_t kMaxDatasetBytes = 1 << 20;

// Small limits keep the oversized cases cheap to send; the others are the
// server's defaults (10^7 parameters, 10^6 steps, batch 8192, 1.6 * 10^7
// activations).
const std::vector<std::string> kServerFlags = {
    "--max_message_bytes=" + std::to_string(kMaxMessageBytes),
    "--max_dataset_bytes=" + std::to_string(kMaxDatasetBytes)};

// SPIRALS, 200 samples, a 2-16-3 ReLU net, 20 steps: valid and quick.
v1::JobSpec ValidSpec() {
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

v1::SyntheticData& Synthetic(v1::JobSpec& spec) {
  return *spec.mutable_data()->mutable_synthetic();
}

void SetUnits(v1::JobSpec& spec, std::vector<uint32_t> hidden) {
  spec.mutable_model()->clear_layers();
  for (uint32_t units : hidden) {
    v1::LayerSpec* layer = spec.mutable_model()->add_layers();
    layer->set_units(units);
    layer->set_activation(v1::RELU);
  }
  spec.mutable_model()->add_layers()->set_units(3);
}

// Four inline examples of two features, labels 0, 1, 2, 0 (or, for MSE, one
// target each); `edit` then spoils one of them.
void UseInline(v1::JobSpec& spec, bool regression,
               const std::function<void(v1::InlineData&)>& edit) {
  v1::InlineData& data = *spec.mutable_data()->mutable_inline_();
  for (int i = 0; i < 4; ++i) {
    v1::Example& example = *data.add_examples();
    example.add_x(0.5f * i);
    example.add_x(-1.0f);
    if (regression) {
      example.add_y(0.25f * i);
    } else {
      example.set_label(i % 3);
    }
  }
  if (regression) {
    spec.set_loss(v1::MSE);
    spec.mutable_model()->mutable_layers(1)->set_units(1);
  }
  spec.mutable_training()->set_batch_size(2);
  edit(data);
}

void UseCsv(v1::JobSpec& spec, const std::string& content, bool header = false,
            int32_t label_column = -1) {
  v1::CsvData& csv = *spec.mutable_data()->mutable_csv();
  csv.set_content(content);
  csv.set_header(header);
  csv.set_label_column(label_column);
  spec.mutable_training()->set_batch_size(2);
}

// `rows` CSV rows "0.5,0.25,<label>", labels cycling through 0, 1, 2.
std::string CsvRows(int rows) {
  std::string content;
  for (int i = 0; i < rows; ++i) {
    content += "0.5,0.25," + std::to_string(i % 3) + "\n";
  }
  return content;
}

struct BadInputCase {
  const char* name;
  std::function<void(v1::JobSpec&)> spoil;
  grpc::StatusCode code;
  // The field the message must name (for a message over gRPC's limit, which
  // the server refuses before reading any field: gRPC's own wording).
  const char* field;
  // A further part of the message: the range, the figure or the flag.
  const char* detail;
};

const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
const grpc::StatusCode kExhausted = grpc::StatusCode::RESOURCE_EXHAUSTED;

const std::vector<BadInputCase>& Cases() {
  static const auto* cases = new std::vector<BadInputCase>{
      // ------------------------------------------------ oversized messages
      {"MessageOverMaxMessageBytes",
       [](v1::JobSpec& s) { UseCsv(s, std::string(kMaxMessageBytes, '1')); },
       kExhausted, "larger than max", "4194304"},
      {"DatasetOverMaxDatasetBytes",
       [](v1::JobSpec& s) { UseCsv(s, CsvRows(100'000)); }, kExhausted,
       "data has", "(--max_dataset_bytes)"},
      // ------------------------------------------------ absurd shapes
      {"LayersOf65536By65536",
       [](v1::JobSpec& s) {
         SetUnits(s, {65536, 65536});
       },
       kExhausted, "model has 4295426051 parameters", "(--max_parameters)"},
      {"LayerWiderThan65536", [](v1::JobSpec& s) { SetUnits(s, {65537}); },
       kInvalid, "model.layers[0].units", "[1, 65536], got 65537"},
      {"MoreThan64Layers",
       [](v1::JobSpec& s) { SetUnits(s, std::vector<uint32_t>(64, 4)); },
       kInvalid, "model.layers count", "[1, 64], got 65"},
      {"HugeBatchTimesWidth",
       [](v1::JobSpec& s) {
         Synthetic(s).set_samples(10'000);
         SetUnits(s, {4096});
         s.mutable_training()->set_batch_size(8192);
       },
       kExhausted, "training.batch_size 8192 times 4101",
       "33595392 activations, over the server's limit of 16000000 "
       "(--max_activations)"},
      {"WideLayerEvaluatedInChunks",
       [](v1::JobSpec& s) { SetUnits(s, {65536}); }, kExhausted,
       "65541 inputs and units per example (model.layers)",
       "(--max_activations)"},
      {"BatchOverMaxBatchSize",
       [](v1::JobSpec& s) {
         Synthetic(s).set_samples(70'000);
         s.mutable_training()->set_batch_size(65536);
       },
       kExhausted, "training.batch_size is 65536", "(--max_batch_size)"},
      {"BatchOver65536",
       [](v1::JobSpec& s) { s.mutable_training()->set_batch_size(65537); },
       kInvalid, "training.batch_size", "[1, 65536], got 65537"},
      {"SamplesTimesFeaturesOverMaxDatasetBytes",
       [](v1::JobSpec& s) {
         Synthetic(s).set_kind(v1::SyntheticData::BLOBS);
         Synthetic(s).set_samples(1'000'000);
         Synthetic(s).set_features(4096);
         SetUnits(s, {});
       },
       kExhausted, "data.synthetic holds 1000000 examples of 4097 values",
       "16388000000 bytes in memory, over the server's limit of 1048576 "
       "(--max_dataset_bytes)"},
      {"StepsNearInt64Max",
       [](v1::JobSpec& s) {
         s.mutable_training()->set_steps(std::numeric_limits<int64_t>::max());
       },
       kInvalid, "training.steps", "got 9223372036854775807"},
      {"StepsAtUint64Max",
       [](v1::JobSpec& s) {
         s.mutable_training()->set_steps(std::numeric_limits<uint64_t>::max());
       },
       kInvalid, "training.steps", "got 18446744073709551615"},
      {"EpochsMakingTooManySteps",
       [](v1::JobSpec& s) {
         Synthetic(s).set_samples(10'000);
         s.mutable_training()->clear_steps();
         s.mutable_training()->set_epochs(1'000'000);
         s.mutable_training()->set_batch_size(1);
       },
       kInvalid, "training.epochs 1000000 makes 10000000000 steps",
       "[1, 1000000000]"},
      {"StepsOverMaxSteps",
       [](v1::JobSpec& s) { s.mutable_training()->set_steps(1'000'000'000); },
       kExhausted, "job has 1000000000 steps", "(--max_steps)"},
      // ------------------------------------------------ NaN and Inf
      {"NanFeature",
       [](v1::JobSpec& s) {
         UseInline(s, false, [](v1::InlineData& d) {
           d.mutable_examples(1)->set_x(0, kNan);
         });
       },
       kInvalid, "data.inline.examples[1].x[0]", "must be finite, got nan"},
      {"InfFeature",
       [](v1::JobSpec& s) {
         UseInline(s, false, [](v1::InlineData& d) {
           d.mutable_examples(3)->set_x(1, kInf);
         });
       },
       kInvalid, "data.inline.examples[3].x[1]", "must be finite, got inf"},
      {"NanTarget",
       [](v1::JobSpec& s) {
         UseInline(s, true, [](v1::InlineData& d) {
           d.mutable_examples(2)->set_y(0, kNan);
         });
       },
       kInvalid, "data.inline.examples[2].y[0]", "must be finite, got nan"},
      {"NegativeInfTarget",
       [](v1::JobSpec& s) {
         UseInline(s, true, [](v1::InlineData& d) {
           d.mutable_examples(0)->set_y(0, -kInf);
         });
       },
       kInvalid, "data.inline.examples[0].y[0]", "must be finite, got -inf"},
      {"CsvNanFeature",
       [](v1::JobSpec& s) { UseCsv(s, "0.5,0.25,0\nnan,1,1\n"); }, kInvalid,
       "data.csv.content line 2, column 1", "\"nan\" is not a finite number"},
      {"CsvFeatureBeyondFloat",
       [](v1::JobSpec& s) { UseCsv(s, "0.5,1e39,0\n1,1,1\n"); }, kInvalid,
       "data.csv.content line 1, column 2", "out of the f32 range"},
      {"CsvInfTarget",
       [](v1::JobSpec& s) {
         s.set_loss(v1::MSE);
         s.mutable_model()->mutable_layers(1)->set_units(1);
         UseCsv(s, "0.5,0.25,1\n1,1,-inf\n");
       },
       kInvalid, "data.csv.content line 2, column 3",
       "\"-inf\" is not a finite number"},
      // ------------------------------------------------ empty datasets
      {"NoInlineExamples",
       [](v1::JobSpec& s) { s.mutable_data()->mutable_inline_(); }, kInvalid,
       "data.inline.examples count", "[2, 1000000], got 0"},
      {"InlineExampleWithoutFeatures",
       [](v1::JobSpec& s) {
         UseInline(s, false, [](v1::InlineData& d) {
           for (v1::Example& e : *d.mutable_examples()) e.clear_x();
         });
       },
       kInvalid, "data.inline.examples[0].x size", "[1, 65536], got 0"},
      {"EmptyCsv", [](v1::JobSpec& s) { UseCsv(s, ""); }, kInvalid,
       "data.csv.content", "has no data rows"},
      {"CsvHeaderOnly",
       [](v1::JobSpec& s) { UseCsv(s, "a,b,label\n", /*header=*/true); },
       kInvalid, "data.csv.content", "has no data rows after the header"},
      {"CsvBlankLinesOnly", [](v1::JobSpec& s) { UseCsv(s, "\n \r\n\t\n"); },
       kInvalid, "data.csv.content", "has no data rows"},
      {"CsvOneRow", [](v1::JobSpec& s) { UseCsv(s, "1,2,0\n"); }, kInvalid,
       "data.csv.content rows", "[2, 1000000], got 1"},
      // ------------------------------------------------ label column
      {"LabelColumnPastTheLastField",
       [](v1::JobSpec& s) { UseCsv(s, CsvRows(4), false, 3); }, kInvalid,
       "data.csv.label_column", "[-3, 2] for rows of 3 fields (line 1), got 3"},
      {"LabelColumnAtInt32Min",
       [](v1::JobSpec& s) {
         UseCsv(s, CsvRows(4), false, std::numeric_limits<int32_t>::min());
       },
       kInvalid, "data.csv.label_column", "got -2147483648"},
      {"LabelColumnOfAFeatureOnlyRow",
       [](v1::JobSpec& s) { UseCsv(s, "1\n2\n", false, 0); }, kInvalid,
       "data.csv.content line 1", "expected at least 2 fields"},
      // ------------------------------------------------ labels
      {"InlineLabelOfAMissingClass",
       [](v1::JobSpec& s) {
         UseInline(s, false, [](v1::InlineData& d) {
           d.mutable_examples(1)->set_label(3);
         });
       },
       kInvalid, "data.inline.examples[1].label", "[0, 2], got 3"},
      {"InlineLabelAtUint32Max",
       [](v1::JobSpec& s) {
         UseInline(s, false, [](v1::InlineData& d) {
           d.mutable_examples(2)->set_label(
               std::numeric_limits<uint32_t>::max());
         });
       },
       kInvalid, "data.inline.examples[2].label", "got 4294967295"},
      {"BinaryLabelTwo",
       [](v1::JobSpec& s) {
         s.set_loss(v1::BINARY_CROSS_ENTROPY);
         s.mutable_model()->mutable_layers(1)->set_units(1);
         UseCsv(s, "1,2,0\n3,4,1\n5,6,2\n");
       },
       kInvalid, "data.csv.content data row 3 label",
       "[0, 1], got 2; BINARY_CROSS_ENTROPY labels are 0 or 1"},
      {"CsvLabelOfAMissingClass",
       [](v1::JobSpec& s) { UseCsv(s, "1,2,0\n3,4,3\n"); }, kInvalid,
       "data.csv.content data row 2 label", "[0, 2], got 3"},
      {"CsvNegativeLabel", [](v1::JobSpec& s) { UseCsv(s, "1,2,0\n3,4,-1\n"); },
       kInvalid, "data.csv.content line 2, column 3",
       "label \"-1\" is not a non-negative integer"},
      {"CsvLabelBeyondInt32",
       [](v1::JobSpec& s) { UseCsv(s, "1,2,0\n3,4,1e10\n"); }, kInvalid,
       "data.csv.content line 2, column 3", "is larger than 2147483647"},
      {"CsvEmptyLabel", [](v1::JobSpec& s) { UseCsv(s, "1,2,\n3,4,1\n"); },
       kInvalid, "data.csv.content line 1, column 3",
       "label \"\" is not a non-negative integer"},
      {"NanInitialWeight",
       [](v1::JobSpec& s) {
         SetUnits(s, {});
         v1::LayerParameters& p = *s.mutable_model()->add_initial_weights();
         p.set_inputs(2);
         p.set_units(3);
         for (int i = 0; i < 6; ++i) p.add_weights(i == 4 ? kNan : 0.1f);
         for (int i = 0; i < 3; ++i) p.add_bias(0);
       },
       kInvalid, "model.initial_weights[0].weights[4]",
       "must be finite, got nan"},
  };
  return *cases;
}

class BadInputTest : public ::testing::TestWithParam<BadInputCase> {
 protected:
  static void SetUpTestSuite() {
    auto server = ServerProcess::Start(kServerFlags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static ServerProcess* server_;
};

ServerProcess* BadInputTest::server_ = nullptr;

v1::JobSpec SpoiledSpec(const BadInputCase& c) {
  v1::JobSpec spec = ValidSpec();
  c.spoil(spec);
  return spec;
}

TEST_P(BadInputTest, SubmitJobRefusesWithTheCodeAndTheField) {
  ASSERT_NE(server_, nullptr);
  const BadInputCase& c = GetParam();
  auto stub = v1::Trainer::NewStub(server_->Channel());
  v1::Job job;
  const grpc::Status status = SubmitJob(*stub, SpoiledSpec(c), &job);
  EXPECT_EQ(status.error_code(), c.code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(c.field));
  EXPECT_THAT(status.error_message(), HasSubstr(c.detail));
  EXPECT_TRUE(job.id().empty());
}

TEST_P(BadInputTest, TrainRefusesTheSameWay) {
  ASSERT_NE(server_, nullptr);
  const BadInputCase& c = GetParam();
  auto stub = v1::Trainer::NewStub(server_->Channel());
  grpc::ClientContext context;
  v1::TrainRequest request;
  *request.mutable_spec() = SpoiledSpec(c);
  auto reader = stub->Train(&context, request);
  v1::JobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), c.code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(c.field));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadInputTest, ::testing::ValuesIn(Cases()),
    [](const ::testing::TestParamInfo<BadInputCase>& info) {
      return std::string(info.param.name);
    });

// Peak resident set of a process (VmHWM), in KiB; -1 if unreadable.
int64_t PeakRssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      int64_t kib = -1;
      status >> kib;
      return kib;
    }
  }
  return -1;
}

// Every case in a row on one server, then a valid job: nothing was queued,
// the job trains to the end, and the server's peak resident set stayed far
// below what the refused specs would have allocated (17 GB of weights for
// the 65536 x 65536 layers, 16 GB of BLOBS, 134 MB for each of the several
// activation tensors of the 8192-row batch). Measured peak: 27 MiB; the
// bound leaves room for gRPC's buffers on a loaded machine, and for
// AddressSanitizer's shadow memory and quarantine.
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kPeakBoundKiB = 1024 * 1024;
#else
constexpr int64_t kPeakBoundKiB = 256 * 1024;
#endif

TEST(BadInputServerTest, ServesOnAfterEveryCaseWithoutGrowing) {
  auto server = ServerProcess::Start(kServerFlags);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Trainer::NewStub((*server)->Channel());
  for (const BadInputCase& c : Cases()) {
    v1::Job job;
    EXPECT_EQ(SubmitJob(*stub, SpoiledSpec(c), &job).error_code(), c.code)
        << c.name;
  }

  grpc::ClientContext list_context;
  v1::ListJobsResponse listed;
  ASSERT_TRUE(
      stub->ListJobs(&list_context, v1::ListJobsRequest(), &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);

  v1::Job job;
  ASSERT_TRUE(SubmitJob(*stub, ValidSpec(), &job).ok());
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(WatchAll(*stub, job.id(), 0, &events).ok());
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_state_change());
  EXPECT_EQ(events.back().state_change().state(), v1::SUCCEEDED);

  const int64_t peak_kib = PeakRssKiB((*server)->pid());
  ASSERT_GT(peak_kib, 0);
  EXPECT_LT(peak_kib, kPeakBoundKiB);
}

// The parser drops a UTF-8 byte order mark; the limits used to count a line
// holding only one as the first row, of a single field, and so saw a model
// with no inputs: 100 columns went unchecked against --max_parameters.
TEST(BadInputServerTest, ByteOrderMarkLineDoesNotHideColumnsFromTheLimits) {
  auto server = ServerProcess::Start({"--max_parameters=1000"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Trainer::NewStub((*server)->Channel());
  std::string row;
  for (int i = 0; i < 99; ++i) row += "0.5,";
  v1::JobSpec spec = ValidSpec();
  UseCsv(spec, "\xEF\xBB\xBF\n" + row + "0\n" + row + "1\n");
  v1::Job job;
  const grpc::Status status = SubmitJob(*stub, spec, &job);
  EXPECT_EQ(status.error_code(), kExhausted);
  // 99*16+16 + 16*3+3.
  EXPECT_EQ(status.error_message(),
            "model has 1651 parameters, over the server's limit of 1000 "
            "(--max_parameters)");
}

// Predict takes rows from the client too: the same rules hold for them.
TEST(BadInputServerTest, PredictRefusesNonFiniteMisshapenAndEmptyInputs) {
  auto server = ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Trainer::NewStub((*server)->Channel());
  v1::Job job;
  ASSERT_TRUE(SubmitJob(*stub, ValidSpec(), &job).ok());
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(WatchAll(*stub, job.id(), 0, &events).ok());

  const auto predict = [&](const std::vector<std::vector<float>>& rows) {
    grpc::ClientContext context;
    v1::PredictRequest request;
    request.set_job_id(job.id());
    for (const std::vector<float>& row : rows) {
      request.add_inputs()->mutable_x()->Assign(row.begin(), row.end());
    }
    v1::PredictResponse response;
    return stub->Predict(&context, request, &response);
  };
  ASSERT_TRUE(predict({{0.5f, -0.5f}}).ok());
  const struct {
    std::vector<std::vector<float>> rows;
    const char* message;
  } cases[] = {
      {{{0.5f, -0.5f}, {kNan, 1.0f}}, "inputs[1].x has a non-finite value"},
      {{{kInf, 0.0f}}, "inputs[0].x has a non-finite value"},
      {{{1.0f, 2.0f, 3.0f}}, "inputs[0].x has 3 values, the model takes 2"},
      {{}, "inputs must hold [1, 65536] rows, got 0"},
      {std::vector<std::vector<float>>(65537, {0.0f, 0.0f}),
       "inputs must hold [1, 65536] rows, got 65537"},
  };
  for (const auto& c : cases) {
    const grpc::Status status = predict(c.rows);
    EXPECT_EQ(status.error_code(), kInvalid) << c.message;
    EXPECT_EQ(status.error_message(), c.message);
  }
}

}  // namespace
}  // namespace gradwatch::e2e
