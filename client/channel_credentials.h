#ifndef GRADWATCH_CLIENT_CHANNEL_CREDENTIALS_H_
#define GRADWATCH_CLIENT_CHANNEL_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"

namespace gradwatch::client {

/// The client's side of TLS, as file paths (empty: not given): the CA that
/// signed the server's certificate, and for mutual TLS the client's own
/// certificate chain and private key. A plain value type.
struct TlsFiles {
  std::string ca;
  std::string cert;
  std::string key;

  bool enabled() const { return !ca.empty() || !cert.empty() || !key.empty(); }
};

/// Reads `files` into TLS channel credentials; null (plaintext) when no
/// file is given. Without a CA the system's roots verify the server.
/// INVALID_ARGUMENT naming the flag (--tls-ca, --tls-cert, --tls-key) for a
/// certificate without a key or the reverse, a file that cannot be read, or
/// one without the expected PEM block. Thread-safe.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeChannelCredentials(const TlsFiles& files);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_CHANNEL_CREDENTIALS_H_
