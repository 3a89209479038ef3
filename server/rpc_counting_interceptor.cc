#include "server/rpc_counting_interceptor.h"

#include <google/protobuf/descriptor.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "gradwatch/v1/trainer.grpc.pb.h"

namespace gradwatch::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcCountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcCountingInterceptor(JobObserver* observer, std::string method)
      : observer_(observer), method_(std::move(method)) {}

  ~RpcCountingInterceptor() override {
    if (!reported_) observer_->OnRpcFinished(method_, "CANCELLED");
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      observer_->OnRpcFinished(
          method_, absl::StatusCodeToString(
                       static_cast<absl::StatusCode>(status.error_code())));
      reported_ = true;
    }
    methods->Proceed();
  }

 private:
  JobObserver* const observer_;
  const std::string method_;
  // Hooks of one call run one at a time.
  bool reported_ = false;
};

// The standard services the server registers besides the Trainer.
constexpr absl::string_view kOtherMethods[] = {
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
};

}  // namespace

std::string RpcCountingInterceptorFactory::MethodLabel(const char* path) {
  if (path == nullptr || path[0] != '/') return "unknown";
  const absl::string_view label(path + 1);
  for (absl::string_view known : kOtherMethods) {
    if (label == known) return std::string(label);
  }
  const absl::string_view service = gradwatch::v1::Trainer::service_full_name();
  if (absl::StartsWith(label, service) && label.size() > service.size() &&
      label[service.size()] == '/') {
    const google::protobuf::ServiceDescriptor* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            std::string(service));
    if (descriptor != nullptr &&
        descriptor->FindMethodByName(
            std::string(label.substr(service.size() + 1))) != nullptr) {
      return std::string(label);
    }
  }
  return "unknown";
}

grpc::experimental::Interceptor*
RpcCountingInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcCountingInterceptor(observer_, MethodLabel(info->method()));
}

}  // namespace gradwatch::server
