#ifndef GRADWATCH_SERVER_STATUS_UTIL_H_
#define GRADWATCH_SERVER_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace gradwatch::server {

/// The one conversion from absl::Status to grpc::Status. The canonical
/// codes share their numbering, so the code and the message carry over
/// unchanged. Thread-safe (pure function).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_STATUS_UTIL_H_
