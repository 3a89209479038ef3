#ifndef GRADWATCH_SERVER_AUTH_H_
#define GRADWATCH_SERVER_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/principal.h"

namespace gradwatch::server {

/// Client metadata as gRPC hands it to a server call.
using ClientMetadata = std::multimap<grpc::string_ref, grpc::string_ref>;

/// Decides who makes each Trainer call from its `authorization: Bearer
/// TOKEN` metadata, against the tokens of --auth_tokens_file. Its format,
/// one token per line:
///
///     # comment
///     TOKEN PRINCIPAL [admin]
///
/// TOKEN is 16 to 1024 printable ASCII characters without spaces, not
/// starting with '#'; PRINCIPAL is 1 to 64 of A-Z a-z 0-9 . _ @ -; the
/// word `admin` lets the principal see every job. A field starting with '#'
/// begins a comment. Several tokens may map to one principal (rotation); a
/// token may appear once.
///
/// A default-constructed Authenticator holds no tokens: every caller is
/// Principal::AnonymousAdmin(). Errors never contain a token. Thread-safe
/// once built (read-only).
class Authenticator {
 public:
  Authenticator() = default;

  /// Parses a tokens file's text. INVALID_ARGUMENT "SOURCE line N: ..." for
  /// a malformed line or a repeated token, and when no line holds a token.
  static absl::StatusOr<Authenticator> Parse(absl::string_view text,
                                             absl::string_view source);
  /// Reads and parses a tokens file; NOT_FOUND when it cannot be read.
  static absl::StatusOr<Authenticator> FromFile(const std::string& path);

  /// Whether calls need a token (a tokens file was given).
  bool requires_token() const { return !entries_.empty(); }
  /// How many tokens are accepted.
  size_t token_count() const { return entries_.size(); }

  /// The principal making the call: UNAUTHENTICATED when tokens are
  /// required and the metadata holds no Bearer token, several, or one
  /// that is not in the table.
  absl::StatusOr<Principal> Authenticate(
      const grpc::CallbackServerContext& context) const;
  absl::StatusOr<Principal> Authenticate(const ClientMetadata& metadata) const;

 private:
  struct Entry {
    std::string token;
    Principal principal;
  };

  // Compares `token` with every entry, so that the time taken does not
  // tell which entry, or which prefix of one, matched.
  const Entry* Find(absl::string_view token) const;

  std::vector<Entry> entries_;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_AUTH_H_
