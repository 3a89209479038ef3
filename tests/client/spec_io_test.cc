#include "client/spec_io.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Debian's Abseil has its own string_view, which gMock does not match.
std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

TEST(SpecIoTest, ParsesProtoAndCamelCaseNamesAndEnums) {
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({
    "name": "tiny",
    "data": {"synthetic": {"kind": "SPIRALS", "samples": 300, "seed": 4}},
    "model": {"layers": [{"units": 8, "activation": "RELU",
                          "init": {"scheme": "HE_NORMAL", "bias": -10}},
                         {"units": 3}]},
    "loss": "CROSS_ENTROPY",
    "optimizer": {"kind": "SGD", "learningRate": 0.1, "momentum": 0.9},
    "training": {"steps": "1500", "batch_size": 64}
  })",
                                                      "tiny.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "tiny");
  EXPECT_EQ(spec->data().synthetic().kind(), v1::SyntheticData::SPIRALS);
  EXPECT_EQ(spec->data().synthetic().samples(), 300u);
  ASSERT_EQ(spec->model().layers_size(), 2);
  EXPECT_EQ(spec->model().layers(0).activation(), v1::RELU);
  EXPECT_EQ(spec->model().layers(0).init().bias(), -10.0);
  EXPECT_EQ(spec->loss(), v1::CROSS_ENTROPY);
  EXPECT_DOUBLE_EQ(spec->optimizer().learning_rate(), 0.1);
  EXPECT_EQ(spec->training().steps(), 1500u);
  EXPECT_EQ(spec->training().batch_size(), 64u);
}

TEST(SpecIoTest, SyntaxErrorNamesLineAndColumn) {
  // Line 3 has a doubled comma; the parser stops at the second one.
  const std::string json =
      "{\n"
      "  \"name\": \"x\",\n"
      "  \"model\": {\"layers\": [{\"units\": 3,, \"activation\": \"RELU\"}]}\n"
      "}\n";
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(json, "bad.json");
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(spec.status()),
              StartsWith("bad.json:3:36: Expected an object key or }."));
  // The excerpt shows the line with a caret under column 36.
  EXPECT_THAT(Message(spec.status()),
              HasSubstr("\n  " + std::string(35, ' ') + "^"));
}

TEST(SpecIoTest, RepeatedTextPointsAtTheFailingCopy) {
  // Lines 2 and 4 read the same around the error's snippet window; only the
  // second one lacks the comma after its object.
  const std::string json =
      "{\"model\": {\"layers\": [\n"
      "  {\"units\": 64, \"activation\": \"RELU\"},\n"
      "  {\"units\": 64, \"activation\": \"RELU\"},\n"
      "  {\"units\": 64, \"activation\": \"RELU\"}\n"
      "  {\"units\": 3}\n"
      "]}}\n";
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(json, "rep.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()), StartsWith("rep.json:5:3: "));
}

TEST(SpecIoTest, UnknownFieldIsRejectedWithItsPosition) {
  const std::string json =
      "{\n"
      "  \"model\": {\n"
      "    \"layers\": [{\"units\": 3},\n"
      "               {\"units\": 3, \"unitz\": 4}]\n"
      "  }\n"
      "}\n";
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(json, "f.json");
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(spec.status()),
              StartsWith("f.json:4:29: (model.layers[1]) unitz: Cannot find "
                         "field."));
}

TEST(SpecIoTest, UnknownTopLevelFieldIsRejected) {
  absl::StatusOr<v1::JobSpec> spec =
      ParseJobSpecJson("{\"name\": \"a\",\n \"modle\": {}}", "t.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()),
              StartsWith("t.json:2:2: modle: Cannot find field."));
}

TEST(SpecIoTest, BadValuePointsAtTheValueEvenInCamelCase) {
  const std::string json =
      "{\"model\": {\"layers\": [{\"units\": 3}],\n"
      "           \"initialWeights\": [{\"inputs\": \"two\"}]}}";
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(json, "v.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()),
              StartsWith("v.json:2:42: (model.initial_weights[0].inputs): "
                         "invalid value \"two\""));
}

TEST(SpecIoTest, BadEnumNameIsRejected) {
  absl::StatusOr<v1::JobSpec> spec =
      ParseJobSpecJson("{\"loss\": \"CROSS\"}", "e.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()),
              StartsWith("e.json:1:10: (loss): invalid value \"CROSS\""));
}

TEST(SpecIoTest, LenientSyntaxIsLocatedToo) {
  // protobuf's parser accepts bare keys and single quotes; so does the
  // locator, so a field error in such a document still gets its position.
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(
      "{name: 'x',\n training: {batch_size: 4, steps: 'many'}}", "l.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()),
              StartsWith("l.json:2:35: (training.steps): invalid value"));
}

TEST(SpecIoTest, ColumnsCountCharactersNotBytes) {
  // "é" is two bytes in UTF-8 but one column: "x" is at column 15, byte 16.
  absl::StatusOr<v1::JobSpec> spec =
      ParseJobSpecJson("{\"name\": \"\xc3\xa9\", \"x\": 1}", "u.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()),
              StartsWith("u.json:1:15: x: Cannot find field."));
}

TEST(SpecIoTest, TruncatedDocumentPointsAtItsEnd) {
  absl::StatusOr<v1::JobSpec> spec =
      ParseJobSpecJson("{\n  \"name\": \"x\"\n", "cut.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()),
              StartsWith("cut.json:3:1: Unexpected end"));
}

TEST(SpecIoTest, ReadsFilesAndNamesMissingOnes) {
  const std::string path = testing::TempDir() + "/spec_io_test.json";
  std::ofstream(path) << R"({"name": "from-file"})";
  absl::StatusOr<v1::JobSpec> spec = ReadJobSpecFile(path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "from-file");
  std::remove(path.c_str());

  absl::StatusOr<v1::JobSpec> missing = ReadJobSpecFile(path);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()),
              HasSubstr(path + ": No such file or directory"));
}

}  // namespace
}  // namespace gradwatch::client
