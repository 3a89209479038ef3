#include "engine/csv_data.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

gradwatch::v1::CsvData Csv(const std::string& content, bool header = false,
                           int label_column = 0) {
  gradwatch::v1::CsvData csv;
  csv.set_content(content);
  csv.set_header(header);
  csv.set_label_column(label_column);
  return csv;
}

Dataset Parse(const gradwatch::v1::CsvData& csv, bool regression = false) {
  absl::StatusOr<Dataset> data = ParseCsv(csv, regression);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *std::move(data) : Dataset{};
}

// The message of the INVALID_ARGUMENT error ParseCsv must return.
std::string Error(const gradwatch::v1::CsvData& csv, bool regression = false) {
  absl::StatusOr<Dataset> data = ParseCsv(csv, regression);
  if (data.ok()) return "ok";
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(data.status().message());
}

TEST(CsvDataTest, HeaderIsSkippedAndLastColumnIsTheLabel) {
  const Dataset d =
      Parse(Csv("a,b,label\n1,2,0\n3.5,-4e-1,1\n", /*header=*/true, -1));
  EXPECT_EQ(d.rows, 2);
  EXPECT_EQ(d.features, 2);
  EXPECT_EQ(d.target_width, 0);
  EXPECT_THAT(d.x, ElementsAre(1.0f, 2.0f, 3.5f, -0.4f));
  EXPECT_THAT(d.labels, ElementsAre(0, 1));
  EXPECT_THAT(d.targets, IsEmpty());
}

TEST(CsvDataTest, LabelColumnMayBeFirstOrInTheMiddle) {
  const Dataset first = Parse(Csv("2,1.5,2.5\n0,3,4\n", false, 0));
  EXPECT_THAT(first.labels, ElementsAre(2, 0));
  EXPECT_THAT(first.x, ElementsAre(1.5f, 2.5f, 3.0f, 4.0f));
  const Dataset middle = Parse(Csv("1.5,2,2.5\n3,0,4\n", false, 1));
  EXPECT_THAT(middle.labels, ElementsAre(2, 0));
  EXPECT_THAT(middle.x, ElementsAre(1.5f, 2.5f, 3.0f, 4.0f));
  const Dataset from_end = Parse(Csv("1.5,2,2.5\n3,0,4\n", false, -2));
  EXPECT_THAT(from_end.labels, ElementsAre(2, 0));
}

TEST(CsvDataTest, AcceptsCrlfBlankLinesSpacesBomAndMissingFinalNewline) {
  const Dataset d =
      Parse(Csv("\xEF\xBB\xBF"
                "x,y,c\r\n\r\n 1 , 2 ,1\r\n\n3,\t4,0.0",
                true, -1));
  EXPECT_EQ(d.rows, 2);
  EXPECT_THAT(d.x, ElementsAre(1.0f, 2.0f, 3.0f, 4.0f));
  EXPECT_THAT(d.labels, ElementsAre(1, 0));
}

TEST(CsvDataTest, NumbersAreParsedWithoutLocaleAndExactlyRounded) {
  const Dataset d = Parse(Csv("0.1,+2,1e-3,-0,7\n", false, -1));
  EXPECT_THAT(d.x, ElementsAre(0.1f, 2.0f, 1e-3f, -0.0f));
  EXPECT_THAT(d.labels, ElementsAre(7));
}

TEST(CsvDataTest, RegressionTakesTheLabelColumnAsTarget) {
  const Dataset d = Parse(Csv("1,2,0.5\n3,4,-1.25\n", false, -1), true);
  EXPECT_EQ(d.target_width, 1);
  EXPECT_TRUE(d.is_regression());
  EXPECT_THAT(d.targets, ElementsAre(0.5f, -1.25f));
  EXPECT_THAT(d.x, ElementsAre(1.0f, 2.0f, 3.0f, 4.0f));
  EXPECT_THAT(d.labels, IsEmpty());
}

TEST(CsvDataTest, NonNumberNamesLineAndColumn) {
  EXPECT_EQ(Error(Csv("1,2,0\n1,2,0\n1,2,0\n1,2,0\n1,2,0\n1,2,0\n1,2,abc\n",
                      false, 0)),
            "data.csv.content line 7, column 3: \"abc\" is not a number");
  // Blank lines and the header still count as lines.
  EXPECT_EQ(Error(Csv("h,h,h\n\n1,x,0\n", true, -1)),
            "data.csv.content line 3, column 2: \"x\" is not a number");
  EXPECT_EQ(Error(Csv("1,,0\n", false, -1)),
            "data.csv.content line 1, column 2: \"\" is not a number");
  EXPECT_EQ(Error(Csv("1,2 3,0\n", false, -1)),
            "data.csv.content line 1, column 2: \"2 3\" is not a number");
  EXPECT_EQ(Error(Csv("1,abc\n", false, -1), /*regression=*/true),
            "data.csv.content line 1, column 2: \"abc\" is not a number");
}

TEST(CsvDataTest, QuotedFieldIsEscapedAndShortened) {
  EXPECT_EQ(Error(Csv("1,\"a\tb\",0\n", false, -1)),
            "data.csv.content line 1, column 2: \"\\\"a\\tb\\\"\" is not a "
            "number");
  EXPECT_EQ(Error(Csv("1," + std::string(100, 'z') + ",0\n", false, -1)),
            "data.csv.content line 1, column 2: \"" + std::string(40, 'z') +
                "...\" is not a number");
}

TEST(CsvDataTest, NonFiniteNumbersAreRejected) {
  EXPECT_EQ(
      Error(Csv("1,2,0\n1,nan,0\n", false, -1)),
      "data.csv.content line 2, column 2: \"nan\" is not a finite number");
  EXPECT_EQ(Error(Csv("-inf,2,0\n", false, -1)),
            "data.csv.content line 1, column 1: \"-inf\" is not a finite "
            "number");
  EXPECT_EQ(Error(Csv("1e39,2,0\n", false, -1)),
            "data.csv.content line 1, column 1: \"1e39\" is out of the f32 "
            "range");
  EXPECT_EQ(Error(Csv("1,2,inf\n", false, -1), /*regression=*/true),
            "data.csv.content line 1, column 3: \"inf\" is not a finite "
            "number");
}

TEST(CsvDataTest, InconsistentFieldCountNamesExpectedAndGot) {
  EXPECT_EQ(Error(Csv("a,b,c\n1,2,0\n1,2\n", true, -1)),
            "data.csv.content line 3: expected 3 fields (as on line 2), got 2");
  EXPECT_EQ(Error(Csv("1,2,0\n1,2,0,4\n", false, -1)),
            "data.csv.content line 2: expected 3 fields (as on line 1), got 4");
  EXPECT_EQ(Error(Csv("1\n2\n", false, 0)),
            "data.csv.content line 1: expected at least 2 fields (features "
            "and a label), got 1");
}

TEST(CsvDataTest, ClassLabelMustBeANonNegativeInteger) {
  EXPECT_EQ(Error(Csv("1,2,-1\n", false, -1)),
            "data.csv.content line 1, column 3: label \"-1\" is not a "
            "non-negative integer");
  EXPECT_EQ(Error(Csv("1,2,0\n1,2,1.5\n", false, 2)),
            "data.csv.content line 2, column 3: label \"1.5\" is not a "
            "non-negative integer");
  EXPECT_EQ(Error(Csv("cat,1,2\n", false, 0)),
            "data.csv.content line 1, column 1: label \"cat\" is not a "
            "non-negative integer");
  EXPECT_EQ(Error(Csv("nan,1,2\n", false, 0)),
            "data.csv.content line 1, column 1: label \"nan\" is not a "
            "non-negative integer");
  EXPECT_EQ(Error(Csv("3000000000,1,2\n", false, 0)),
            "data.csv.content line 1, column 1: label \"3000000000\" is "
            "larger than 2147483647");
  // The same column is a valid regression target.
  EXPECT_THAT(Parse(Csv("1,2,-1.5\n", false, -1), true).targets,
              ElementsAre(-1.5f));
}

TEST(CsvDataTest, LabelColumnOutOfRange) {
  EXPECT_EQ(Error(Csv("h\n1,2,0\n", true, 3)),
            "data.csv.label_column must be in [-3, 2] for rows of 3 fields "
            "(line 2), got 3");
  EXPECT_EQ(Error(Csv("1,2,0\n", false, -4)),
            "data.csv.label_column must be in [-3, 2] for rows of 3 fields "
            "(line 1), got -4");
}

TEST(CsvDataTest, NoDataRows) {
  EXPECT_EQ(Error(Csv("", false, 0)), "data.csv.content has no data rows");
  EXPECT_EQ(Error(Csv("\n \r\n\n", false, 0)),
            "data.csv.content has no data rows");
  EXPECT_EQ(Error(Csv("a,b,c\n", true, 0)),
            "data.csv.content has no data rows after the header");
}

}  // namespace
}  // namespace gradwatch::engine
