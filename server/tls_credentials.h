#ifndef GRADWATCH_SERVER_TLS_CREDENTIALS_H_
#define GRADWATCH_SERVER_TLS_CREDENTIALS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gradwatch::server {

/// The server's TLS material, as PEM text: its certificate chain and key,
/// and for mutual TLS the CA that must have signed every client's
/// certificate. An empty certificate means plaintext. A plain value type.
struct ServerTls {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;

  bool enabled() const { return !cert_chain.empty(); }
  bool mutual() const { return !client_ca.empty(); }
};

/// Reads the files named by --tls_cert, --tls_key and --tls_client_ca
/// (empty paths: not given). INVALID_ARGUMENT naming the flag for a key
/// without a certificate or the reverse, a client CA without a server
/// certificate, a file that cannot be read, or one without the expected
/// PEM block. All empty: plaintext. Thread-safe.
absl::StatusOr<ServerTls> LoadServerTls(const std::string& cert_path,
                                        const std::string& key_path,
                                        const std::string& client_ca_path);

/// SSL credentials for `tls` (requiring and verifying a client
/// certificate when it is mutual), or insecure ones when it is not
/// enabled. Thread-safe.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const ServerTls& tls);

/// Whether HOST (as in --listen HOST:PORT) is a loopback address only
/// this machine can reach: localhost, 127.0.0.0/8 or ::1.
bool IsLoopbackHost(absl::string_view host);

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_TLS_CREDENTIALS_H_
