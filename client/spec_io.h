#ifndef GRADWATCH_CLIENT_SPEC_IO_H_
#define GRADWATCH_CLIENT_SPEC_IO_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::client {

/// Parses a JobSpec written in protobuf's JSON mapping (field names as in
/// the .proto or in lowerCamelCase, enums by name) with protobuf's own
/// parser. Unknown fields are rejected. Errors are INVALID_ARGUMENT:
/// "<source_name>:<line>:<column>: <parser message>", followed by the
/// offending line and a caret under the column. Thread-safe.
absl::StatusOr<gradwatch::v1::JobSpec> ParseJobSpecJson(
    absl::string_view json, absl::string_view source_name);

/// Reads a .json spec file and parses it as ParseJobSpecJson does.
/// NOT_FOUND (or PERMISSION_DENIED, ...) when the file cannot be read.
absl::StatusOr<gradwatch::v1::JobSpec> ReadJobSpecFile(const std::string& path);

/// Reads a whole file; the error names the path and the system's reason.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_SPEC_IO_H_
