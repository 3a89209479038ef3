#include "engine/csv_data.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace gradwatch::engine {
namespace {

constexpr absl::string_view kUtf8Bom = "\xEF\xBB\xBF";
constexpr size_t kMaxQuotedChars = 40;

// The field as it appears in an error message: quoted, escaped, shortened.
std::string Quote(absl::string_view field) {
  const bool shortened = field.size() > kMaxQuotedChars;
  if (shortened) field = field.substr(0, kMaxQuotedChars);
  return absl::StrCat("\"", absl::CHexEscape(field),
                      shortened ? "...\"" : "\"");
}

absl::Status FieldError(int64_t line, int column, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(
      "data.csv.content line ", line, ", column ", column, ": ", message));
}

absl::Status LineError(int64_t line, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("data.csv.content line ", line, ": ", message));
}

// A finite f32. SimpleAtof is locale-independent and, unlike strtof, rejects
// trailing garbage; it maps an out-of-range magnitude to infinity.
absl::Status ParseNumber(absl::string_view field, int64_t line, int column,
                         float* out) {
  if (!absl::SimpleAtof(field, out)) {
    return FieldError(line, column,
                      absl::StrCat(Quote(field), " is not a number"));
  }
  if (!std::isfinite(*out)) {
    double wide = 0.0;
    const bool representable_as_double =
        absl::SimpleAtod(field, &wide) && std::isfinite(wide);
    return FieldError(
        line, column,
        absl::StrCat(Quote(field), representable_as_double
                                       ? " is out of the f32 range"
                                       : " is not a finite number"));
  }
  return absl::OkStatus();
}

// A class index: a number with a non-negative integral value ("3", "3.0")
// that fits int32.
absl::Status ParseLabel(absl::string_view field, int64_t line, int column,
                        int32_t* out) {
  double value = 0.0;
  if (!absl::SimpleAtod(field, &value) || !std::isfinite(value) ||
      value < 0.0 || std::floor(value) != value) {
    return FieldError(
        line, column,
        absl::StrCat("label ", Quote(field), " is not a non-negative integer"));
  }
  if (value > std::numeric_limits<int32_t>::max()) {
    return FieldError(line, column,
                      absl::StrCat("label ", Quote(field), " is larger than ",
                                   std::numeric_limits<int32_t>::max()));
  }
  *out = static_cast<int32_t>(value);
  return absl::OkStatus();
}

// Splits on every comma; quoting is not supported (every field is a number).
void SplitFields(absl::string_view line,
                 std::vector<absl::string_view>& fields) {
  fields.clear();
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    if (comma == absl::string_view::npos) {
      fields.push_back(line.substr(start));
      return;
    }
    fields.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

}  // namespace

// Beyond the header's contract: a leading UTF-8 byte order mark is dropped;
// the header is the first non-blank line; blank means empty or only ASCII
// whitespace; spaces around a field are ignored; a class label may be
// written as an integral number ("3.0"); fields are never quoted.
absl::StatusOr<Dataset> ParseCsv(const gradwatch::v1::CsvData& csv,
                                 bool regression) {
  absl::string_view content = csv.content();
  if (absl::StartsWith(content, kUtf8Bom))
    content.remove_prefix(kUtf8Bom.size());
  // Every data row holds field_count - 1 commas, which bounds the rows
  // (and the memory reserved) by the size of the document.
  const int64_t commas = std::count(content.begin(), content.end(), ',');

  Dataset d;
  if (regression) d.target_width = 1;
  bool skip_header = csv.header();
  int field_count = 0;  // fixed by the first data row
  int64_t first_row_line = 0;
  int label_column = 0;
  std::vector<absl::string_view> fields;

  int64_t line_number = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == absl::string_view::npos) end = content.size();
    absl::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    if (skip_header) {
      skip_header = false;
      continue;
    }

    SplitFields(line, fields);
    const int64_t got = static_cast<int64_t>(fields.size());
    if (field_count == 0) {
      if (got < 2) {
        return LineError(line_number,
                         absl::StrCat("expected at least 2 fields (features "
                                      "and a label), got ",
                                      got));
      }
      if (got > std::numeric_limits<int>::max()) {
        return LineError(line_number, absl::StrCat("too many fields: ", got));
      }
      field_count = static_cast<int>(got);
      first_row_line = line_number;
      label_column = csv.label_column();
      if (label_column < 0) label_column += field_count;
      if (label_column < 0 || label_column >= field_count) {
        return absl::InvalidArgumentError(absl::StrCat(
            "data.csv.label_column must be in [", -field_count, ", ",
            field_count - 1, "] for rows of ", field_count, " fields (line ",
            line_number, "), got ", csv.label_column()));
      }
      d.features = field_count - 1;
      const int64_t max_rows = commas / d.features;
      try {
        d.x.reserve(static_cast<size_t>(max_rows) * d.features);
        if (regression) {
          d.targets.reserve(max_rows);
        } else {
          d.labels.reserve(max_rows);
        }
      } catch (const std::bad_alloc&) {
        return absl::ResourceExhaustedError(
            absl::StrCat("data.csv.content: cannot allocate ", max_rows,
                         " rows of ", field_count, " fields"));
      }
    } else if (got != field_count) {
      return LineError(
          line_number,
          absl::StrCat("expected ", field_count, " fields (as on line ",
                       first_row_line, "), got ", got));
    }

    for (int column = 0; column < field_count; ++column) {
      float value = 0.0f;
      if (column == label_column && !regression) {
        int32_t label = 0;
        absl::Status status =
            ParseLabel(fields[column], line_number, column + 1, &label);
        if (!status.ok()) return status;
        d.labels.push_back(label);
        continue;
      }
      absl::Status status =
          ParseNumber(fields[column], line_number, column + 1, &value);
      if (!status.ok()) return status;
      if (column == label_column) {
        d.targets.push_back(value);
      } else {
        d.x.push_back(value);
      }
    }
    ++d.rows;
  }

  if (d.rows == 0) {
    return absl::InvalidArgumentError(
        csv.header() ? "data.csv.content has no data rows after the header"
                     : "data.csv.content has no data rows");
  }
  return d;
}

}  // namespace gradwatch::engine
