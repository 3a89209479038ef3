#include "client/spec_io.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/json_locator.h"
#include "google/protobuf/util/json_util.h"

namespace gradwatch::client {
namespace {

// Where protobuf's message points: a snippet for syntax errors,
// "(path) key: Cannot find field." for unknown fields, "(path): invalid
// value ..." for bad values, "key: Cannot find field." at the top level.
std::optional<size_t> LocateError(const JsonLocator& locator,
                                  absl::string_view message) {
  if (absl::StrContains(message, '\n')) {
    return locator.OffsetOfSnippet(message);
  }
  if (absl::StartsWith(message, "(")) {
    const size_t close = message.find(')');
    if (close == absl::string_view::npos) return std::nullopt;
    const absl::string_view path = message.substr(1, close - 1);
    const absl::string_view rest = message.substr(close + 1);
    if (absl::StartsWith(rest, ":")) {
      return locator.OffsetOfPath(path, /*value=*/true);
    }
    const size_t colon = rest.find(':');
    const absl::string_view key = absl::StripAsciiWhitespace(
        rest.substr(0, colon == absl::string_view::npos ? 0 : colon));
    return locator.OffsetOfPath(absl::StrCat(path, ".", key), /*value=*/false);
  }
  const size_t colon = message.find(':');
  if (colon != absl::string_view::npos && colon > 0) {
    return locator.OffsetOfPath(message.substr(0, colon), /*value=*/false);
  }
  if (locator.syntax_error_offset().has_value()) {
    return locator.syntax_error_offset();
  }
  // An error about the document as a whole ("Root element must be a
  // message"): point at its first character.
  return std::optional<size_t>(0);
}

// The line holding `offset`, and under it a caret at the offset (tabs kept
// so that the caret lines up).
std::string ExcerptAt(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t begin = offset;
  while (begin > 0 && text[begin - 1] != '\n') --begin;
  size_t end = text.find('\n', offset);
  if (end == absl::string_view::npos) end = text.size();
  std::string caret;
  for (size_t i = begin; i < offset; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\t') {
      caret.push_back('\t');
    } else if ((c & 0xC0) != 0x80) {
      caret.push_back(' ');
    }
  }
  return absl::StrCat("  ", text.substr(begin, end - begin), "\n  ", caret,
                      "^");
}

}  // namespace

absl::StatusOr<gradwatch::v1::JobSpec> ParseJobSpecJson(
    absl::string_view json, absl::string_view source_name) {
  gradwatch::v1::JobSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &spec, options);
  if (status.ok()) return spec;

  const std::string message(status.message().data(), status.message().size());
  const std::string headline = message.substr(0, message.find('\n'));
  const JsonLocator locator(json);
  const std::optional<size_t> offset = LocateError(locator, message);
  if (!offset.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": ", headline));
  }
  const TextPosition position = PositionOfOffset(json, *offset);
  return absl::InvalidArgumentError(
      absl::StrCat(source_name, ":", position.line, ":", position.column, ": ",
                   headline, "\n", ExcerptAt(json, *offset)));
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string reason = std::strerror(error);
    const std::string text = absl::StrCat("cannot read ", path, ": ", reason);
    if (error == ENOENT) return absl::NotFoundError(text);
    if (error == EACCES) return absl::PermissionDeniedError(text);
    return absl::FailedPreconditionError(text);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("cannot read ", path));
  }
  return contents.str();
}

absl::StatusOr<gradwatch::v1::JobSpec> ReadJobSpecFile(
    const std::string& path) {
  absl::StatusOr<std::string> json = ReadFileToString(path);
  if (!json.ok()) return json.status();
  return ParseJobSpecJson(*json, path);
}

}  // namespace gradwatch::client
