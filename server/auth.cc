#include "server/auth.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gradwatch::server {
namespace {

constexpr size_t kMinTokenLength = 16;
// gRPC's default metadata limit is 8 KiB; a longer token could never arrive.
constexpr size_t kMaxTokenLength = 1024;
constexpr size_t kMaxPrincipalLength = 64;
constexpr char kAuthorizationKey[] = "authorization";
constexpr absl::string_view kBearerScheme = "bearer";

bool IsTokenChar(char c) { return c >= 0x21 && c <= 0x7e; }

bool IsPrincipalChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '@' || c == '-';
}

// The line is never quoted: it holds a token.
absl::Status LineError(absl::string_view source, int line,
                       absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, " line ", line, ": ", what));
}

absl::Status CheckToken(absl::string_view token, absl::string_view source,
                        int line) {
  if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength) {
    return LineError(
        source, line,
        absl::StrCat("the token must be ", kMinTokenLength, " to ",
                     kMaxTokenLength, " characters, got ", token.size()));
  }
  if (!std::all_of(token.begin(), token.end(), IsTokenChar)) {
    return LineError(source, line,
                     "the token must be printable ASCII without spaces");
  }
  return absl::OkStatus();
}

absl::Status CheckPrincipal(absl::string_view principal,
                            absl::string_view source, int line) {
  if (principal.size() > kMaxPrincipalLength ||
      !std::all_of(principal.begin(), principal.end(), IsPrincipalChar)) {
    return LineError(
        source, line,
        absl::StrCat("the principal must be 1 to ", kMaxPrincipalLength,
                     " of A-Z a-z 0-9 . _ @ -"));
  }
  return absl::OkStatus();
}

// Equal or not in a time that depends on the lengths only, never on where
// the first differing byte is.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t length = std::max(a.size(), b.size());
  volatile unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < length; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    difference = static_cast<unsigned char>(difference | (x ^ y));
  }
  return difference == 0;
}

}  // namespace

absl::StatusOr<Authenticator> Authenticator::Parse(absl::string_view text,
                                                   absl::string_view source) {
  Authenticator authenticator;
  absl::flat_hash_map<std::string, int> line_of_token;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    std::vector<absl::string_view> fields;
    for (absl::string_view field :
         absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty())) {
      if (absl::StartsWith(field, "#")) break;
      fields.push_back(field);
    }
    if (fields.empty()) continue;
    if (fields.size() > 3) {
      return LineError(source, line_number,
                       absl::StrCat("expected TOKEN PRINCIPAL [admin], got ",
                                    fields.size(), " fields"));
    }
    if (fields.size() < 2) {
      return LineError(source, line_number,
                       "expected TOKEN PRINCIPAL [admin], got 1 field");
    }
    if (fields.size() == 3 && fields[2] != "admin") {
      return LineError(source, line_number,
                       "the third field, if any, must be the word admin");
    }
    absl::Status valid = CheckToken(fields[0], source, line_number);
    if (valid.ok()) valid = CheckPrincipal(fields[1], source, line_number);
    if (!valid.ok()) return valid;
    auto [it, inserted] =
        line_of_token.emplace(std::string(fields[0]), line_number);
    if (!inserted) {
      return LineError(source, line_number,
                       absl::StrCat("repeats the token of line ", it->second));
    }
    authenticator.entries_.push_back(
        Entry{std::string(fields[0]),
              Principal{std::string(fields[1]), fields.size() == 3}});
  }
  if (authenticator.entries_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " holds no tokens: nobody could call the server"));
  }
  return authenticator;
}

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  return Parse(text.str(), path);
}

const Authenticator::Entry* Authenticator::Find(absl::string_view token) const {
  const Entry* found = nullptr;
  for (const Entry& entry : entries_) {
    const bool equal = ConstantTimeEquals(token, entry.token);
    if (equal) found = &entry;
  }
  return found;
}

absl::StatusOr<Principal> Authenticator::Authenticate(
    const grpc::CallbackServerContext& context) const {
  if (!requires_token()) return Principal::AnonymousAdmin();
  return Authenticate(context.client_metadata());
}

absl::StatusOr<Principal> Authenticator::Authenticate(
    const ClientMetadata& metadata) const {
  if (!requires_token()) return Principal::AnonymousAdmin();
  auto [first, last] = metadata.equal_range(kAuthorizationKey);
  if (first == last) {
    return absl::UnauthenticatedError(
        "this server needs a token: send the metadata 'authorization: "
        "Bearer TOKEN' (gradwatch --token, or GRADWATCH_TOKEN)");
  }
  if (std::next(first) != last) {
    return absl::UnauthenticatedError(
        "more than one authorization metadata entry");
  }
  const absl::string_view value(first->second.data(), first->second.size());
  const size_t space = value.find(' ');
  if (space == absl::string_view::npos ||
      !absl::EqualsIgnoreCase(value.substr(0, space), kBearerScheme)) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be 'Bearer TOKEN'");
  }
  const Entry* entry = Find(absl::StripAsciiWhitespace(value.substr(space)));
  if (entry == nullptr) {
    return absl::UnauthenticatedError("the bearer token is not valid");
  }
  return entry->principal;
}

}  // namespace gradwatch::server
