#include "client/rows_csv.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

using ::testing::ElementsAre;

TEST(RowsCsvTest, ParsesRowsAndSkipsHeaderAndBlankLines) {
  absl::StatusOr<std::vector<v1::Example>> rows =
      ParseRowsCsv("x0,x1\r\n0.5, -1\n\n1e-3,2\n", "rows.csv");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_THAT((*rows)[0].x(), ElementsAre(0.5f, -1.0f));
  EXPECT_THAT((*rows)[1].x(), ElementsAre(1e-3f, 2.0f));
}

TEST(RowsCsvTest, BadFieldNamesLineAndColumn) {
  absl::StatusOr<std::vector<v1::Example>> rows =
      ParseRowsCsv("1,2\n3,abc\n", "rows.csv");
  ASSERT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(rows.status().message()),
            "rows.csv:2:3: \"abc\" is not a finite number");
}

TEST(RowsCsvTest, RowsMustBeEquallyWide) {
  absl::StatusOr<std::vector<v1::Example>> rows =
      ParseRowsCsv("1,2\n3,4,5\n", "rows.csv");
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(std::string(rows.status().message()),
            "rows.csv:2: row has 3 fields, the first row 2");
}

TEST(RowsCsvTest, EmptyInputIsAnError) {
  EXPECT_FALSE(ParseRowsCsv("a,b\n", "rows.csv").ok());
  EXPECT_FALSE(ParseRowsCsv("", "rows.csv").ok());
}

}  // namespace
}  // namespace gradwatch::client
