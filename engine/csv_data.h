#ifndef GRADWATCH_ENGINE_CSV_DATA_H_
#define GRADWATCH_ENGINE_CSV_DATA_H_

#include "absl/status/statusor.h"
#include "engine/dataset.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Parses a CSV document into a Dataset. Every field except the label must
/// be a finite number; every row must have the same number of fields; for
/// classification the label must be a non-negative integer. Empty lines
/// (and a trailing newline) are skipped; "\r\n" line ends are accepted.
///
/// Errors are INVALID_ARGUMENT and name the 1-based line and column, e.g.
/// `data.csv.content line 7, column 3: "abc" is not a number`.
absl::StatusOr<Dataset> ParseCsv(const gradwatch::v1::CsvData& csv,
                                 bool regression);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_CSV_DATA_H_
