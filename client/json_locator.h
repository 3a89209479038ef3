#ifndef GRADWATCH_CLIENT_JSON_LOCATOR_H_
#define GRADWATCH_CLIENT_JSON_LOCATOR_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace gradwatch::client {

/// A 1-based line and column in a text; the column counts UTF-8 characters.
struct TextPosition {
  int line = 1;
  int column = 1;
};

/// Line and column of the byte at `offset` (clamped to the text's end).
TextPosition PositionOfOffset(absl::string_view text, size_t offset);

/// Finds places in a JSON document for error messages: protobuf's JSON
/// parser reports syntax errors with a text snippet and field errors with a
/// field path, but never with an offset. The scanner accepts the same
/// lenient syntax as that parser (single-quoted strings, bare keys,
/// trailing commas). Immutable after construction; thread-compatible.
class JsonLocator {
 public:
  /// Scans `text`, which must outlive the locator.
  explicit JsonLocator(absl::string_view text);

  /// Byte offset of the first syntax error, if the scanner found one.
  std::optional<size_t> syntax_error_offset() const { return syntax_error_; }

  /// Byte offset of the key (or, with `value`, of the value) at a field
  /// path in protobuf's notation: "model.layers[1].init.gain", keys in
  /// snake_case whatever their spelling in the document. A path that is not
  /// in the document falls back to its longest present prefix.
  std::optional<size_t> OffsetOfPath(absl::string_view path, bool value) const;

  /// Offset of a syntax error described by protobuf's parser: its message
  /// ends with a snippet line and a caret line under the error. Uses the
  /// scanner's own finding to choose among repeated snippets.
  std::optional<size_t> OffsetOfSnippet(absl::string_view parser_message) const;

 private:
  struct Entry {
    size_t key_offset = 0;
    size_t value_offset = 0;
  };

  bool ScanValue(const std::string& path, int depth);
  bool ScanObject(const std::string& path, int depth);
  bool ScanArray(const std::string& path, int depth);
  bool ScanString(std::string* contents);
  bool ScanBareWord(std::string* word);
  bool ScanNumber();
  void SkipSpace();
  bool Fail();

  absl::string_view text_;
  size_t pos_ = 0;
  std::optional<size_t> syntax_error_;
  std::map<std::string, Entry> entries_;
};

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_JSON_LOCATOR_H_
