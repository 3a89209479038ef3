#ifndef GRADWATCH_SERVER_PROTO_TIME_H_
#define GRADWATCH_SERVER_PROTO_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace gradwatch::server {

/// `time` as a google.protobuf.Timestamp (nanosecond precision).
google::protobuf::Timestamp ToTimestamp(absl::Time time);

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_PROTO_TIME_H_
