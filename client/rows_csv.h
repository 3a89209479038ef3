#ifndef GRADWATCH_CLIENT_ROWS_CSV_H_
#define GRADWATCH_CLIENT_ROWS_CSV_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::client {

/// Parses the input rows of a prediction: comma-separated numbers, one row
/// per line, every row equally wide. A first line that is not all numbers
/// is a header and is skipped; empty lines are skipped; "\r\n" is accepted.
/// Errors are INVALID_ARGUMENT "<source_name>:<line>:<column>: ...".
/// Thread-safe (pure function).
absl::StatusOr<std::vector<gradwatch::v1::Example>> ParseRowsCsv(
    absl::string_view text, absl::string_view source_name);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_ROWS_CSV_H_
