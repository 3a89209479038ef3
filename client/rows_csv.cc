#include "client/rows_csv.h"

#include <cmath>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gradwatch::client {

absl::StatusOr<std::vector<gradwatch::v1::Example>> ParseRowsCsv(
    absl::string_view text, absl::string_view source_name) {
  std::vector<gradwatch::v1::Example> rows;
  int line_number = 0;
  int width = -1;
  bool first_line = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    gradwatch::v1::Example example;
    int column = 1;
    absl::Status error;
    for (absl::string_view field : absl::StrSplit(line, ',')) {
      float value = 0;
      if (!absl::SimpleAtof(absl::StripAsciiWhitespace(field), &value) ||
          !std::isfinite(value)) {
        error = absl::InvalidArgumentError(absl::StrCat(
            source_name, ":", line_number, ":", column, ": \"",
            absl::StripAsciiWhitespace(field), "\" is not a finite number"));
        break;
      }
      example.add_x(value);
      column += static_cast<int>(field.size()) + 1;
    }
    if (!error.ok()) {
      if (first_line) {  // a header
        first_line = false;
        continue;
      }
      return error;
    }
    first_line = false;
    if (width >= 0 && example.x_size() != width) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name, ":", line_number, ": row has ",
                       example.x_size(), " fields, the first row ", width));
    }
    width = example.x_size();
    rows.push_back(std::move(example));
  }
  if (rows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": no rows of numbers"));
  }
  return rows;
}

}  // namespace gradwatch::client
