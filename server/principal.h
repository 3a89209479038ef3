#ifndef GRADWATCH_SERVER_PRINCIPAL_H_
#define GRADWATCH_SERVER_PRINCIPAL_H_

#include <string>

namespace gradwatch::server {

/// Who makes a call: the name a bearer token maps to, and whether that name
/// may see every job. A job belongs to the principal that submitted it; a
/// principal that is not an admin reaches only its own jobs. A plain value
/// type.
struct Principal {
  /// Empty for the anonymous caller of a server without a tokens file.
  std::string name;
  bool admin = false;

  /// The caller of a server without a tokens file: it owns nothing (its
  /// jobs get an empty owner) and sees everything.
  static Principal AnonymousAdmin() { return Principal{"", true}; }

  /// Whether this principal may reach a job owned by `owner`.
  bool CanAccess(const std::string& owner) const {
    return admin || owner == name;
  }
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_PRINCIPAL_H_
