#include "server/tls_credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gradwatch::server {
namespace {

// Reads a PEM file and checks that it holds the expected block, so that a
// swapped or truncated file is reported against its flag at startup
// rather than as a failed handshake later.
absl::StatusOr<std::string> ReadPem(absl::string_view flag,
                                    const std::string& path,
                                    absl::string_view begin_suffix,
                                    absl::string_view what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << file.rdbuf();
  const std::string pem = text.str();
  for (size_t begin = pem.find("-----BEGIN "); begin != std::string::npos;
       begin = pem.find("-----BEGIN ", begin + 1)) {
    const absl::string_view line =
        absl::string_view(pem).substr(begin, pem.find('\n', begin) - begin);
    if (absl::StrContains(line, begin_suffix)) return pem;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": ", path, " holds no PEM ", what,
                   " (-----BEGIN ...", begin_suffix, ")"));
}

}  // namespace

absl::StatusOr<ServerTls> LoadServerTls(const std::string& cert_path,
                                        const std::string& key_path,
                                        const std::string& client_ca_path) {
  ServerTls tls;
  if (cert_path.empty() != key_path.empty()) {
    return absl::InvalidArgumentError(
        cert_path.empty() ? "--tls_key needs --tls_cert (the certificate of "
                            "that key)"
                          : "--tls_cert needs --tls_key (the private key of "
                            "that certificate)");
  }
  if (!client_ca_path.empty() && cert_path.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca needs --tls_cert and --tls_key: mutual TLS is TLS "
        "with client certificates");
  }
  if (cert_path.empty()) return tls;
  absl::StatusOr<std::string> cert =
      ReadPem("tls_cert", cert_path, "CERTIFICATE-----", "certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      ReadPem("tls_key", key_path, "PRIVATE KEY-----", "private key");
  if (!key.ok()) return key.status();
  tls.cert_chain = std::move(*cert);
  tls.private_key = std::move(*key);
  if (!client_ca_path.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("tls_client_ca", client_ca_path,
                                             "CERTIFICATE-----", "certificate");
    if (!ca.ok()) return ca.status();
    tls.client_ca = std::move(*ca);
  }
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const ServerTls& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      tls.mutual() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_root_certs = tls.client_ca;
  options.pem_key_cert_pairs.push_back({tls.private_key, tls.cert_chain});
  return grpc::SslServerCredentials(options);
}

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  // 127.0.0.0/8, written as four decimal parts.
  std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (absl::string_view part : parts) {
    int value = 0;
    if (part.empty() || !absl::SimpleAtoi(part, &value) || value < 0 ||
        value > 255) {
      return false;
    }
  }
  return true;
}

}  // namespace gradwatch::server
