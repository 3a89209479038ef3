#include "server/job_history.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;
using ::google::protobuf::util::MessageDifferencer;

// A step's statistics event with a layer, a tensor and a histogram, so
// that its bytes cover nested, repeated and packed fields.
v1::JobEvent StatsEvent(uint64_t step) {
  v1::JobEvent event;
  event.set_step(step);
  v1::StepStats* stats = event.mutable_stats();
  stats->set_step(step);
  stats->set_loss(1.0 / static_cast<double>(step + 1));
  v1::LayerStats* layer = stats->add_layers();
  layer->set_name("0");
  layer->set_units(32);
  layer->set_dead_units(static_cast<uint32_t>(step % 7));
  v1::TensorStats* weights = layer->add_params();
  weights->set_name("weights");
  weights->set_grad_l2_norm(0.25 * static_cast<double>(step));
  weights->mutable_grad_exponents()->set_first_exponent(-20);
  for (uint64_t c : {3, 0, 17, 4}) {
    weights->mutable_grad_exponents()->add_counts(c + step);
  }
  return event;
}

v1::JobEvent Parse(const SerializedEvent& event) {
  v1::JobEvent parsed;
  EXPECT_TRUE(parsed.ParseFromArray(event.bytes.begin(),
                                    static_cast<int>(event.bytes.size())));
  return parsed;
}

class CountingListener : public HistoryListener {
 public:
  void OnHistoryChanged() override {
    absl::MutexLock lock(&mu_);
    ++calls_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  int calls_ = 0;
};

TEST(JobHistoryTest, AppendStampsTheEventAndKeepsItsBytes) {
  JobHistory history("j-1", /*max_listeners=*/4);
  JobHistory::EventPtr first = history.Append(StatsEvent(1));
  JobHistory::EventPtr second = history.Append(StatsEvent(2));
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(first->job_id(), "j-1");
  EXPECT_EQ(first->sequence(), 0u);
  EXPECT_EQ(second->sequence(), 1u);
  EXPECT_GT(first->time().seconds(), 0);
  EXPECT_EQ(first->stats().layers(0).params(0).grad_exponents().counts(2), 18u);

  std::deque<SerializedEvent> stored;
  EXPECT_FALSE(history.ReadSerialized(0, 10, &stored));
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].step, 1u);
  EXPECT_EQ(stored[1].step, 2u);
  // The bytes are the returned event's serialization: what a typed
  // stream would have sent.
  EXPECT_EQ(std::string(stored[0].bytes.begin(), stored[0].bytes.end()),
            first->SerializeAsString());
  EXPECT_TRUE(MessageDifferencer::Equals(Parse(stored[1]), *second));
  EXPECT_EQ(history.serialized_bytes(),
            first->ByteSizeLong() + second->ByteSizeLong());
}

TEST(JobHistoryTest, ReadersShareTheBytes) {
  JobHistory history("j-1", 4);
  history.Append(StatsEvent(1));
  std::deque<SerializedEvent> a, b;
  history.ReadSerialized(0, 1, &a);
  history.ReadSerialized(0, 1, &b);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].bytes.begin(), b[0].bytes.begin());
}

TEST(JobHistoryTest, ReadParsesTheMessages) {
  JobHistory history("j-1", 4);
  std::vector<JobHistory::EventPtr> appended;
  for (uint64_t step = 0; step < 5; ++step) {
    appended.push_back(history.Append(StatsEvent(step)));
  }
  std::deque<JobHistory::EventPtr> read;
  EXPECT_FALSE(history.Read(2, 2, &read));
  ASSERT_EQ(read.size(), 2u);
  EXPECT_TRUE(MessageDifferencer::Equals(*read[0], *appended[2]));
  EXPECT_TRUE(MessageDifferencer::Equals(*read[1], *appended[3]));

  history.Close();
  read.clear();
  EXPECT_TRUE(history.Read(3, 100, &read));
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[1]->sequence(), 4u);
  read.clear();
  // Not everything read yet: not at the end.
  EXPECT_FALSE(history.Read(0, 1, &read));
}

TEST(JobHistoryTest, FirstSequenceAtStep) {
  JobHistory history("j-1", 4);
  v1::JobEvent started;
  started.mutable_started()->set_steps_total(3);
  history.Append(started);  // step 0
  for (uint64_t step = 1; step <= 3; ++step) history.Append(StatsEvent(step));
  v1::JobEvent alert;
  alert.set_step(3);
  alert.mutable_alert()->set_firing(true);
  history.Append(alert);
  EXPECT_EQ(history.FirstSequenceAtStep(0), 0u);
  EXPECT_EQ(history.FirstSequenceAtStep(1), 1u);
  EXPECT_EQ(history.FirstSequenceAtStep(3), 3u);
  EXPECT_EQ(history.FirstSequenceAtStep(4), 5u);
  EXPECT_EQ(history.size(), 5u);
}

TEST(JobHistoryTest, NothingIsAppendedOnceClosed) {
  JobHistory history("j-1", 4);
  history.Append(StatsEvent(1));
  history.Close();
  EXPECT_TRUE(history.closed());
  EXPECT_EQ(history.Append(StatsEvent(2)), nullptr);
  EXPECT_EQ(history.size(), 1u);
  std::deque<SerializedEvent> stored;
  EXPECT_TRUE(history.ReadSerialized(0, 10, &stored));
  EXPECT_EQ(stored.size(), 1u);
}

TEST(JobHistoryTest, RestoreTakesOnlyTheNextEventAsStored) {
  JobHistory history("j-1", 4);
  v1::JobEvent event = StatsEvent(4);
  event.set_job_id("j-1");
  event.set_sequence(0);
  event.mutable_time()->set_seconds(1234);
  ASSERT_TRUE(history.Restore(event).ok());
  // Out of sequence, or another job's event.
  EXPECT_EQ(history.Restore(event).code(),
            absl::StatusCode::kFailedPrecondition);
  event.set_sequence(1);
  event.set_job_id("j-2");
  EXPECT_EQ(history.Restore(event).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(history.size(), 1u);

  std::deque<JobHistory::EventPtr> read;
  history.Read(0, 1, &read);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0]->time().seconds(), 1234);
  EXPECT_EQ(read[0]->stats().step(), 4u);
  // Appends continue the restored sequence.
  EXPECT_EQ(history.Append(StatsEvent(5))->sequence(), 1u);
}

TEST(JobHistoryTest, ConcurrentAppendsGetDistinctSequencesInOrder) {
  JobHistory history("j-1", 4);
  constexpr uint64_t kPerThread = 2000;
  auto append = [&history](uint64_t marker) {
    for (uint64_t i = 0; i < kPerThread; ++i) {
      v1::JobEvent event;
      event.mutable_state_change()->set_message(
          std::to_string(marker * kPerThread + i));
      history.Append(std::move(event));
    }
  };
  std::thread a(append, 0), b(append, 1);
  a.join();
  b.join();
  std::deque<SerializedEvent> stored;
  history.ReadSerialized(0, 2 * kPerThread, &stored);
  ASSERT_EQ(stored.size(), 2 * kPerThread);
  std::vector<int> seen(2 * kPerThread, 0);
  uint64_t next_of[2] = {0, kPerThread};
  for (uint64_t i = 0; i < stored.size(); ++i) {
    v1::JobEvent event = Parse(stored[i]);
    // Each event's bytes carry its own position.
    EXPECT_EQ(event.sequence(), i);
    const uint64_t marker = std::stoull(event.state_change().message());
    ++seen[marker];
    // One thread's events keep their order.
    const int thread = marker < kPerThread ? 0 : 1;
    EXPECT_EQ(marker, next_of[thread]++);
  }
  for (int count : seen) EXPECT_EQ(count, 1);
}

TEST(JobHistoryTest, ListenersAreToldAndBounded) {
  JobHistory history("j-1", /*max_listeners=*/1);
  auto listener = std::make_shared<CountingListener>();
  ASSERT_TRUE(history.AddListener(listener).ok());
  auto second = std::make_shared<CountingListener>();
  EXPECT_EQ(history.AddListener(second).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(history.listener_count(), 1);
  history.Append(StatsEvent(1));
  history.Append(StatsEvent(2));
  history.Close();
  EXPECT_EQ(listener->calls(), 3);
  EXPECT_EQ(second->calls(), 0);

  // A listener that went away frees its place.
  listener.reset();
  EXPECT_EQ(history.listener_count(), 0);
  EXPECT_TRUE(history.AddListener(second).ok());
  history.RemoveListener(second.get());
  EXPECT_EQ(history.listener_count(), 0);
}

}  // namespace
}  // namespace gradwatch::server
