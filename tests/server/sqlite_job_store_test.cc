#include "server/sqlite_job_store.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

v1::Job MakeJob(const std::string& id, v1::JobState state) {
  v1::Job job;
  job.set_id(id);
  job.set_state(state);
  job.set_steps_total(40);
  job.mutable_create_time()->set_seconds(1'700'000'000);
  job.mutable_spec()->set_name("spec of " + id);
  job.mutable_spec()->mutable_training()->set_steps(40);
  job.mutable_spec()->mutable_model()->add_layers()->set_units(16);
  return job;
}

v1::JobEvent MakeEvent(const std::string& id, uint64_t sequence) {
  v1::JobEvent event;
  event.set_job_id(id);
  event.set_sequence(sequence);
  event.set_step(sequence / 2);
  event.mutable_time()->set_seconds(1'700'000'000 + sequence);
  if (sequence == 0) {
    event.mutable_state_change()->set_state(v1::QUEUED);
  } else {
    v1::StepStats* stats = event.mutable_stats();
    stats->set_step(sequence / 2);
    stats->set_loss(1.0 / static_cast<double>(sequence));
  }
  return event;
}

v1::Model MakeModel(const std::string& id) {
  v1::Model model;
  model.set_job_id(id);
  model.set_step(40);
  v1::LayerParameters* layer = model.add_layers();
  for (int i = 0; i < 48; ++i)
    layer->add_weights(0.25f * static_cast<float>(i));
  for (int i = 0; i < 16; ++i) layer->add_bias(-0.5f * static_cast<float>(i));
  return model;
}

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir_template = ::testing::TempDir() + "sqlite-store-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
    path_ = dir_ + "/gradwatch.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteJobStore> Open() {
    auto store = SqliteJobStore::Open(path_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Two jobs, the first with `events` events and a model, the second with
  // one event and no model.
  void Fill(SqliteJobStore& store, uint64_t events) {
    ASSERT_TRUE(store.PutJob(MakeJob("j-a", v1::RUNNING)).ok());
    ASSERT_TRUE(store.PutJob(MakeJob("j-b", v1::QUEUED)).ok());
    for (uint64_t i = 0; i < events; ++i) {
      ASSERT_TRUE(store.AppendEvent(MakeEvent("j-a", i)).ok()) << i;
    }
    ASSERT_TRUE(store.AppendEvent(MakeEvent("j-b", 0)).ok());
    ASSERT_TRUE(store.PutModel(MakeModel("j-a")).ok());
    // Replacing a record keeps the job's place in the order.
    ASSERT_TRUE(store.PutJob(MakeJob("j-a", v1::SUCCEEDED)).ok());
  }

  // What Fill stored, as LoadAll must return it.
  static void ExpectFilled(const std::vector<JobStore::StoredJob>& all,
                           uint64_t events) {
    ASSERT_EQ(all.size(), 2u);
    EXPECT_TRUE(
        MessageDifferencer::Equals(all[0].job, MakeJob("j-a", v1::SUCCEEDED)));
    EXPECT_TRUE(
        MessageDifferencer::Equals(all[1].job, MakeJob("j-b", v1::QUEUED)));
    ASSERT_EQ(all[0].events.size(), events);
    for (uint64_t i = 0; i < events; ++i) {
      EXPECT_TRUE(
          MessageDifferencer::Equals(all[0].events[i], MakeEvent("j-a", i)))
          << "event " << i;
    }
    ASSERT_EQ(all[1].events.size(), 1u);
    EXPECT_TRUE(
        MessageDifferencer::Equals(all[1].events[0], MakeEvent("j-b", 0)));
    ASSERT_TRUE(all[0].model.has_value());
    EXPECT_TRUE(MessageDifferencer::Equals(*all[0].model, MakeModel("j-a")));
    EXPECT_FALSE(all[1].model.has_value());
  }

  std::string dir_;
  std::string path_;
};

TEST_F(SqliteJobStoreTest, RoundTripsRecordsEventsInOrderAndModels) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Fill(*store, 25);
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ExpectFilled(*all, 25);
}

TEST_F(SqliteJobStoreTest, ReopenedFileReadsBackAndContinuesTheSequence) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Fill(*store, 3000);  // several writer batches
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ExpectFilled(*all, 3000);

  EXPECT_EQ(store->AppendEvent(MakeEvent("j-a", 2999)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store->AppendEvent(MakeEvent("j-a", 3000)).ok());
  EXPECT_TRUE(store->AppendEvent(MakeEvent("j-b", 1)).ok());
  all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)[0].events.size(), 3001u);
  EXPECT_EQ((*all)[1].events.size(), 2u);
}

TEST_F(SqliteJobStoreTest, UsesWriteAheadLogging) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto mode = store->JournalMode();
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(*mode, "wal");
  ASSERT_TRUE(store->PutJob(MakeJob("j-a", v1::QUEUED)).ok());
  // Commits go to the log, not the database file, until a checkpoint.
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
  EXPECT_GT(std::filesystem::file_size(path_ + "-wal"), 0u);
}

TEST_F(SqliteJobStoreTest, RejectsEventsOutOfOrderAndForUnknownJobs) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->AppendEvent(MakeEvent("j-x", 0)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->PutModel(MakeModel("j-x")).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->PutJob(MakeJob("j-a", v1::RUNNING)).ok());
  EXPECT_EQ(store->AppendEvent(MakeEvent("j-a", 1)).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->AppendEvent(MakeEvent("j-a", 0)).ok());
  EXPECT_EQ(store->AppendEvent(MakeEvent("j-a", 0)).code(),
            absl::StatusCode::kFailedPrecondition);
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].events.size(), 1u);
}

TEST_F(SqliteJobStoreTest, DeleteJobRemovesRecordEventsAndModel) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Fill(*store, 10);
    ASSERT_TRUE(store->DeleteJob("j-a").ok());
    EXPECT_TRUE(store->DeleteJob("j-unknown").ok());
    EXPECT_EQ(store->AppendEvent(MakeEvent("j-a", 10)).code(),
              absl::StatusCode::kNotFound);
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].job.id(), "j-b");
  EXPECT_EQ((*all)[0].events.size(), 1u);
  // The id can be used again, from sequence 0, without the old history.
  ASSERT_TRUE(store->PutJob(MakeJob("j-a", v1::QUEUED)).ok());
  ASSERT_TRUE(store->AppendEvent(MakeEvent("j-a", 0)).ok());
  all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].job.id(), "j-a");
  EXPECT_EQ((*all)[1].events.size(), 1u);
  EXPECT_FALSE((*all)[1].model.has_value());
}

TEST_F(SqliteJobStoreTest, SecondOpenOfTheSameFileFailsWhileTheFirstIsOpen) {
  auto first = Open();
  ASSERT_NE(first, nullptr);
  auto second = SqliteJobStore::Open(path_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another server"));
  first.reset();
  auto third = SqliteJobStore::Open(path_);
  EXPECT_TRUE(third.ok()) << third.status();
}

// More than the writer may have queued (8 MiB): appends wait for room
// instead of growing the queue, and nothing is dropped.
TEST_F(SqliteJobStoreTest, AFullQueueSlowsAppendsAndLosesNothing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->PutJob(MakeJob("j-a", v1::RUNNING)).ok());
  const std::string message(64 << 10, 'm');
  constexpr uint64_t kEvents = 256;  // 16 MiB
  for (uint64_t i = 0; i < kEvents; ++i) {
    v1::JobEvent event = MakeEvent("j-a", i);
    event.mutable_state_change()->set_message(message);
    ASSERT_TRUE(store->AppendEvent(event).ok()) << i;
  }
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ((*all)[0].events.size(), kEvents);
  for (uint64_t i = 0; i < kEvents; ++i) {
    EXPECT_EQ((*all)[0].events[i].sequence(), i);
    EXPECT_EQ((*all)[0].events[i].state_change().message().size(),
              message.size());
  }
}

TEST_F(SqliteJobStoreTest, OpenFailsInAMissingDirectory) {
  auto store = SqliteJobStore::Open(dir_ + "/missing/gradwatch.db");
  EXPECT_FALSE(store.ok());
}

using SqliteJobStoreDeathTest = SqliteJobStoreTest;

// A process killed with SIGKILL closes nothing: what it flushed is found by
// the next process, from the log.
TEST_F(SqliteJobStoreDeathTest, FlushedWritesSurviveSigkill) {
  EXPECT_EXIT(
      {
        auto store = SqliteJobStore::Open(path_);
        if (!store.ok()) _exit(1);
        Fill(**store, 500);
        if (!(*store)->AppendEvent(MakeEvent("j-a", 500)).ok()) _exit(2);
        if (!(*store)->Flush().ok()) _exit(3);
        raise(SIGKILL);
      },
      ::testing::KilledBySignal(SIGKILL), "");
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  ASSERT_EQ((*all)[0].events.size(), 501u);
  EXPECT_TRUE(
      MessageDifferencer::Equals((*all)[0].events[500], MakeEvent("j-a", 500)));
  (*all)[0].events.pop_back();
  ExpectFilled(*all, 500);
}

}  // namespace
}  // namespace gradwatch::server
