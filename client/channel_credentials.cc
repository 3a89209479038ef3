#include "client/channel_credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace gradwatch::client {
namespace {

// Reads a PEM file and checks that it holds the expected block, so that a
// swapped or truncated file is named before any connection is tried.
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

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeChannelCredentials(const TlsFiles& files) {
  if (!files.enabled()) return nullptr;
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(files.cert.empty()
                                          ? "--tls-key needs --tls-cert"
                                          : "--tls-cert needs --tls-key");
  }
  grpc::SslCredentialsOptions options;
  if (!files.ca.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPem("tls-ca", files.ca, "CERTIFICATE-----", "certificate");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = std::move(*ca);
  }
  if (!files.cert.empty()) {
    absl::StatusOr<std::string> cert =
        ReadPem("tls-cert", files.cert, "CERTIFICATE-----", "certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        ReadPem("tls-key", files.key, "PRIVATE KEY-----", "private key");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = std::move(*cert);
    options.pem_private_key = std::move(*key);
  }
  return grpc::SslCredentials(options);
}

}  // namespace gradwatch::client
