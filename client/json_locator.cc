#include "client/json_locator.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gradwatch::client {
namespace {

// The same bound as protobuf's JSON parser, so that a deep document fails
// here too instead of exhausting the stack.
constexpr int kMaxDepth = 100;

// protobuf reports paths with proto field names; documents may use the
// lowerCamelCase JSON names ("initialWeights").
std::string ToSnakeCase(absl::string_view key) {
  std::string out;
  for (char c : key) {
    if (absl::ascii_isupper(static_cast<unsigned char>(c))) {
      out.push_back('_');
      out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" -> "".
std::string ParentPath(absl::string_view path) {
  if (!path.empty() && path.back() == ']') {
    size_t open = path.rfind('[');
    return std::string(
        path.substr(0, open == absl::string_view::npos ? 0 : open));
  }
  size_t dot = path.rfind('.');
  return std::string(path.substr(0, dot == absl::string_view::npos ? 0 : dot));
}

size_t Distance(size_t a, size_t b) { return a > b ? a - b : b - a; }

bool IsWordChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
}

}  // namespace

TextPosition PositionOfOffset(absl::string_view text, size_t offset) {
  TextPosition position;
  offset = std::min(offset, text.size());
  for (size_t i = 0; i < offset; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++position.line;
      position.column = 1;
    } else if ((c & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++position.column;
    }
  }
  return position;
}

JsonLocator::JsonLocator(absl::string_view text) : text_(text) {
  if (ScanValue("", 0)) {
    SkipSpace();
    if (pos_ < text_.size()) Fail();
  }
}

std::optional<size_t> JsonLocator::OffsetOfPath(absl::string_view path,
                                                bool value) const {
  std::string current(path);
  while (!current.empty()) {
    auto it = entries_.find(current);
    if (it != entries_.end()) {
      return value ? it->second.value_offset : it->second.key_offset;
    }
    current = ParentPath(current);
  }
  return std::nullopt;
}

std::optional<size_t> JsonLocator::OffsetOfSnippet(
    absl::string_view parser_message) const {
  // "<message>\n<snippet>\n<spaces>^": the snippet may span lines itself.
  const size_t first_newline = parser_message.find('\n');
  const size_t last_newline = parser_message.rfind('\n');
  if (first_newline == absl::string_view::npos ||
      first_newline == last_newline) {
    return syntax_error_;
  }
  const absl::string_view caret_line = parser_message.substr(last_newline + 1);
  const size_t caret = caret_line.find('^');
  if (caret == absl::string_view::npos) return syntax_error_;
  const absl::string_view snippet = parser_message.substr(
      first_newline + 1, last_newline - first_newline - 1);
  if (snippet.empty()) return text_.size();  // the parser ran out of input

  std::vector<size_t> candidates;
  for (size_t at = text_.find(snippet); at != absl::string_view::npos;
       at = text_.find(snippet, at + 1)) {
    candidates.push_back(at + caret);
  }
  if (candidates.empty()) return syntax_error_;
  if (candidates.size() == 1 || !syntax_error_.has_value()) {
    return candidates.front();
  }
  const size_t own = *syntax_error_;
  return *std::min_element(candidates.begin(), candidates.end(),
                           [own](size_t a, size_t b) {
                             return Distance(a, own) < Distance(b, own);
                           });
}

bool JsonLocator::Fail() {
  if (!syntax_error_.has_value()) syntax_error_ = pos_;
  return false;
}

void JsonLocator::SkipSpace() {
  while (pos_ < text_.size() &&
         absl::ascii_isspace(static_cast<unsigned char>(text_[pos_]))) {
    ++pos_;
  }
}

bool JsonLocator::ScanValue(const std::string& path, int depth) {
  SkipSpace();
  if (pos_ >= text_.size() || depth > kMaxDepth) return Fail();
  const char c = text_[pos_];
  if (c == '{') return ScanObject(path, depth + 1);
  if (c == '[') return ScanArray(path, depth + 1);
  if (c == '"' || c == '\'') return ScanString(nullptr);
  if (c == '-' || absl::ascii_isdigit(static_cast<unsigned char>(c))) {
    return ScanNumber();
  }
  const size_t start = pos_;
  std::string word;
  if (!ScanBareWord(&word)) return false;
  if (word == "true" || word == "false" || word == "null") return true;
  pos_ = start;
  return Fail();
}

bool JsonLocator::ScanObject(const std::string& path, int depth) {
  ++pos_;  // '{'
  while (true) {
    SkipSpace();
    if (pos_ >= text_.size()) return Fail();
    if (text_[pos_] == '}') {
      ++pos_;
      return true;
    }
    Entry entry;
    entry.key_offset = pos_;
    std::string key;
    const char c = text_[pos_];
    if (c == '"' || c == '\'') {
      if (!ScanString(&key)) return false;
    } else if (!ScanBareWord(&key)) {
      return false;
    }
    SkipSpace();
    if (pos_ >= text_.size() || text_[pos_] != ':') return Fail();
    ++pos_;
    SkipSpace();
    entry.value_offset = pos_;
    const std::string child = path.empty()
                                  ? ToSnakeCase(key)
                                  : absl::StrCat(path, ".", ToSnakeCase(key));
    entries_.emplace(child, entry);
    if (!ScanValue(child, depth)) return false;
    SkipSpace();
    if (pos_ >= text_.size()) return Fail();
    if (text_[pos_] == ',') {
      ++pos_;
    } else if (text_[pos_] != '}') {
      return Fail();
    }
  }
}

bool JsonLocator::ScanArray(const std::string& path, int depth) {
  ++pos_;  // '['
  for (int index = 0;; ++index) {
    SkipSpace();
    if (pos_ >= text_.size()) return Fail();
    if (text_[pos_] == ']') {
      ++pos_;
      return true;
    }
    const std::string child = absl::StrCat(path, "[", index, "]");
    entries_.emplace(child, Entry{pos_, pos_});
    if (!ScanValue(child, depth)) return false;
    SkipSpace();
    if (pos_ >= text_.size()) return Fail();
    if (text_[pos_] == ',') {
      ++pos_;
    } else if (text_[pos_] != ']') {
      return Fail();
    }
  }
}

bool JsonLocator::ScanString(std::string* contents) {
  const char quote = text_[pos_++];
  while (pos_ < text_.size()) {
    const char c = text_[pos_++];
    if (c == quote) return true;
    if (c == '\\') {
      if (pos_ >= text_.size()) break;
      if (contents != nullptr) contents->push_back(text_[pos_]);
      ++pos_;
    } else if (contents != nullptr) {
      contents->push_back(c);
    }
  }
  return Fail();
}

bool JsonLocator::ScanBareWord(std::string* word) {
  const size_t start = pos_;
  while (pos_ < text_.size() && IsWordChar(text_[pos_])) ++pos_;
  if (pos_ == start) return Fail();
  *word = std::string(text_.substr(start, pos_ - start));
  return true;
}

bool JsonLocator::ScanNumber() {
  const size_t start = pos_;
  if (text_[pos_] == '-') ++pos_;
  // JSON has no octal or hex numbers; protobuf reports them at the number.
  if (pos_ + 1 < text_.size() && text_[pos_] == '0' &&
      IsWordChar(text_[pos_ + 1])) {
    pos_ = start;
    return Fail();
  }
  const size_t digits = pos_;
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    const bool exponent_sign =
        (c == '+' || c == '-') &&
        (text_[pos_ - 1] == 'e' || text_[pos_ - 1] == 'E');
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '.' &&
        c != 'e' && c != 'E' && !exponent_sign) {
      break;
    }
    ++pos_;
  }
  if (pos_ == digits) {
    pos_ = start;
    return Fail();
  }
  return true;
}

}  // namespace gradwatch::client
