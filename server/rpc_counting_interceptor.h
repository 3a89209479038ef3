#ifndef GRADWATCH_SERVER_RPC_COUNTING_INTERCEPTOR_H_
#define GRADWATCH_SERVER_RPC_COUNTING_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <string>

#include "server/job_observer.h"

namespace gradwatch::server {

/// Creates, for every call the server receives, an interceptor that tells
/// `observer` the call's method and the status it ended with
/// (JobObserver::OnRpcFinished). Methods are those of the Trainer, health
/// and reflection services; any other name a client sends is reported as
/// "unknown", so that the set of method labels stays bounded. A call that
/// ends without the server sending a status (the client went away first)
/// is reported as CANCELLED.
///
/// Thread-safe: gRPC creates interceptors from any of its threads.
class RpcCountingInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  /// `observer` must outlive the server.
  explicit RpcCountingInterceptorFactory(JobObserver* observer)
      : observer_(observer) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

  /// The label of a gRPC method path ("/gradwatch.v1.Trainer/GetJob" is
  /// "gradwatch.v1.Trainer/GetJob"; an unserved one is "unknown").
  static std::string MethodLabel(const char* path);

 private:
  JobObserver* const observer_;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_RPC_COUNTING_INTERCEPTOR_H_
