#include "engine/batcher.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

// Row r has x = (r, r + 0.5) and label r (or target 10 r).
Dataset Numbered(int64_t rows, bool regression = false) {
  Dataset d;
  d.rows = rows;
  d.features = 2;
  if (regression) d.target_width = 1;
  for (int64_t r = 0; r < rows; ++r) {
    d.x.push_back(static_cast<float>(r));
    d.x.push_back(static_cast<float>(r) + 0.5f);
    if (regression) {
      d.targets.push_back(10.0f * r);
    } else {
      d.labels.push_back(static_cast<int32_t>(r));
    }
  }
  return d;
}

// The row ids of the next batch, checking that x and label stay paired.
std::vector<int32_t> NextRows(Batcher& batcher, int batch_size) {
  std::vector<float> x(2 * batch_size, -1.0f);
  std::vector<int32_t> labels(batch_size, -1);
  batcher.Next(x.data(), labels.data(), nullptr);
  for (int b = 0; b < batch_size; ++b) {
    EXPECT_EQ(x[2 * b], static_cast<float>(labels[b]));
    EXPECT_EQ(x[2 * b + 1], static_cast<float>(labels[b]) + 0.5f);
  }
  return labels;
}

std::vector<int32_t> Epoch(Batcher& batcher, int batch_size) {
  std::vector<int32_t> rows;
  for (int64_t s = 0; s < batcher.steps_per_epoch(); ++s) {
    const std::vector<int32_t> batch = NextRows(batcher, batch_size);
    rows.insert(rows.end(), batch.begin(), batch.end());
  }
  return rows;
}

std::vector<int32_t> Iota(int n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(BatcherTest, EveryRowExactlyOncePerEpoch) {
  const Dataset data = Numbered(12);
  Batcher batcher(data, 4, 1);
  EXPECT_EQ(batcher.steps_per_epoch(), 3);
  for (int epoch = 0; epoch < 5; ++epoch) {
    std::vector<int32_t> rows = Epoch(batcher, 4);
    EXPECT_EQ(batcher.epoch(), epoch);
    std::sort(rows.begin(), rows.end());
    EXPECT_EQ(rows, Iota(12)) << "epoch " << epoch;
  }
}

TEST(BatcherTest, EpochCounterStartsAtZeroWithTheFirstBatch) {
  const Dataset data = Numbered(10);
  Batcher batcher(data, 3, 5);
  EXPECT_EQ(batcher.epoch(), -1);
  const int64_t expected[] = {0, 0, 0, 1, 1, 1, 2};
  for (int64_t e : expected) {
    NextRows(batcher, 3);
    EXPECT_EQ(batcher.epoch(), e);
  }
}

TEST(BatcherTest, LastPartialBatchIsDropped) {
  const Dataset data = Numbered(10);
  Batcher batcher(data, 3, 2);
  EXPECT_EQ(batcher.steps_per_epoch(), 3);
  std::vector<int> seen(10, 0);
  for (int epoch = 0; epoch < 40; ++epoch) {
    std::vector<int32_t> rows = Epoch(batcher, 3);
    ASSERT_EQ(rows.size(), 9u);
    std::sort(rows.begin(), rows.end());
    EXPECT_EQ(std::adjacent_find(rows.begin(), rows.end()), rows.end())
        << "a row repeated within epoch " << epoch;
    for (int32_t r : rows) ++seen[r];
  }
  // The dropped row changes with each permutation: no row is starved.
  for (int r = 0; r < 10; ++r) EXPECT_GT(seen[r], 20) << "row " << r;
}

TEST(BatcherTest, EachEpochIsReshuffled) {
  const Dataset data = Numbered(16);
  Batcher batcher(data, 16, 9);
  const std::vector<int32_t> first = NextRows(batcher, 16);
  const std::vector<int32_t> second = NextRows(batcher, 16);
  EXPECT_NE(first, Iota(16));
  EXPECT_NE(first, second);
  EXPECT_EQ(batcher.epoch(), 1);
}

TEST(BatcherTest, SameSeedGivesTheSameBatches) {
  const Dataset data = Numbered(20);
  Batcher a(data, 6, 123);
  Batcher b(data, 6, 123);
  Batcher c(data, 6, 124);
  std::vector<int32_t> from_a, from_b, from_c;
  for (int s = 0; s < 10; ++s) {
    for (int32_t r : NextRows(a, 6)) from_a.push_back(r);
    for (int32_t r : NextRows(b, 6)) from_b.push_back(r);
    for (int32_t r : NextRows(c, 6)) from_c.push_back(r);
  }
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_c);
}

TEST(BatcherTest, RegressionBatchesCarryTargets) {
  const Dataset data = Numbered(8, /*regression=*/true);
  Batcher batcher(data, 4, 4);
  std::vector<float> x(8), targets(4);
  for (int s = 0; s < 4; ++s) {
    batcher.Next(x.data(), nullptr, targets.data());
    for (int b = 0; b < 4; ++b) EXPECT_EQ(targets[b], 10.0f * x[2 * b]);
  }
}

TEST(BatcherTest, WholeDatasetBatchIsAPermutation) {
  const Dataset data = Numbered(7);
  Batcher batcher(data, 7, 0);
  EXPECT_EQ(batcher.steps_per_epoch(), 1);
  std::vector<int32_t> rows = NextRows(batcher, 7);
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(rows, Iota(7));
}

TEST(BatcherTest, BrokenPreconditionWritesNothing) {
  const Dataset data = Numbered(4);
  Batcher batcher(data, 5, 0);
  EXPECT_EQ(batcher.steps_per_epoch(), 0);
  std::vector<float> x(10, -1.0f);
  std::vector<int32_t> labels(5, -1);
  batcher.Next(x.data(), labels.data(), nullptr);
  EXPECT_THAT(labels, ::testing::Each(-1));
  EXPECT_EQ(batcher.epoch(), -1);
}

}  // namespace
}  // namespace gradwatch::engine
