#ifndef GRADWATCH_TESTS_E2E_TRAINER_CALLS_H_
#define GRADWATCH_TESTS_E2E_TRAINER_CALLS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gradwatch/v1/trainer.grpc.pb.h"

namespace gradwatch::e2e {

// The Trainer RPCs the end-to-end tests make again and again, each with a
// fresh context and no deadline; the status is the server's answer.
using TrainerStub = gradwatch::v1::Trainer::StubInterface;

grpc::Status SubmitJob(TrainerStub& stub, const gradwatch::v1::JobSpec& spec,
                       gradwatch::v1::Job* job);
grpc::Status GetJob(TrainerStub& stub, const std::string& id,
                    gradwatch::v1::Job* job);
grpc::Status CancelJob(TrainerStub& stub, const std::string& id,
                       gradwatch::v1::Job* job);
grpc::Status GetModel(TrainerStub& stub, const std::string& id,
                      gradwatch::v1::Model* model);

// Every event of WatchJob(id, from_step), read to the end of the stream.
grpc::Status WatchAll(TrainerStub& stub, const std::string& id,
                      uint64_t from_step,
                      std::vector<gradwatch::v1::JobEvent>* events);

}  // namespace gradwatch::e2e

#endif  // GRADWATCH_TESTS_E2E_TRAINER_CALLS_H_
