// Fuzzes the CLI's JSON spec reader: protobuf's parser plus the locator
// that turns its messages into a line, a column and a caret. An error must
// stay INVALID_ARGUMENT and name the source; a document that parses must
// read back the same from its own JSON rendering; the locator's offsets
// must stay inside the document.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "client/json_locator.h"
#include "client/spec_io.h"
#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gradwatch/v1/spec.pb.h"

namespace {

namespace v1 = ::gradwatch::v1;
using ::gradwatch::client::JsonLocator;

constexpr absl::string_view kSource = "fuzz.json";

void Require(bool condition, const char* what,
             const absl::Status& status = absl::OkStatus()) {
  if (condition) return;
  std::fprintf(stderr, "spec_json_fuzzer: %s: %s\n", what,
               status.ToString().c_str());
  std::abort();
}

void RequireInside(std::optional<size_t> offset, absl::string_view text,
                   const char* what) {
  Require(!offset.has_value() || *offset <= text.size(), what);
}

void CheckLocator(absl::string_view text, absl::string_view message) {
  const JsonLocator locator(text);
  RequireInside(locator.syntax_error_offset(), text, "syntax error offset");
  for (const char* path :
       {"model.layers[0].units", "data.csv.content", "training", "labels"}) {
    RequireInside(locator.OffsetOfPath(path, false), text, "key offset");
    RequireInside(locator.OffsetOfPath(path, true), text, "value offset");
  }
  RequireInside(locator.OffsetOfSnippet(message), text, "snippet offset");
  const gradwatch::client::TextPosition end =
      gradwatch::client::PositionOfOffset(text, text.size());
  Require(end.line >= 1 && end.column >= 1, "position before the start");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<v1::JobSpec> spec =
      gradwatch::client::ParseJobSpecJson(text, kSource);
  if (!spec.ok()) {
    Require(absl::IsInvalidArgument(spec.status()), "unexpected error code",
            spec.status());
    Require(
        absl::StartsWith(spec.status().message(), std::string(kSource) + ":"),
        "error does not name the source", spec.status());
    CheckLocator(text, spec.status().message());
    return 0;
  }
  CheckLocator(text, "");
  std::string json;
  Require(google::protobuf::util::MessageToJsonString(*spec, &json).ok(),
          "a parsed spec cannot be printed as JSON");
  const absl::StatusOr<v1::JobSpec> again =
      gradwatch::client::ParseJobSpecJson(json, kSource);
  Require(again.ok(), "the JSON rendering of a spec does not parse",
          again.status());
  // Compared as values: protobuf reads its own "-0" back as 0 (an unset
  // field) and prints map entries in no fixed order; NaN is a valid value.
  google::protobuf::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  google::protobuf::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  differencer.set_message_field_comparison(
      google::protobuf::util::MessageDifferencer::EQUIVALENT);
  std::string differences;
  differencer.ReportDifferencesToString(&differences);
  Require(differencer.Compare(*spec, *again),
          "the spec changed through its JSON rendering",
          absl::DataLossError(differences));
  return 0;
}
