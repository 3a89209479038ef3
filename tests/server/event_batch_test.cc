// AppendBatchEntry: the slices of a JobEventBatch built from serialized
// events, parsed back as the message a client receives.

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "gradwatch/v1/trainer.pb.h"
#include "gtest/gtest.h"
#include "server/watch_reactor.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

// An event whose serialized size is exactly `size` bytes (its job id
// fills it up), with `sequence` to tell it apart.
v1::JobEvent EventOfSize(size_t size, uint64_t sequence) {
  v1::JobEvent event;
  event.set_sequence(sequence);
  event.set_step(sequence * 3);
  // The job id adds its length plus a tag and a length varint of at most
  // 10 bytes together: start just below and grow it byte by byte.
  const size_t base = event.ByteSizeLong();
  for (size_t id = size > base + 10 ? size - base - 10 : 0; id <= size; ++id) {
    event.set_job_id(std::string(id, 'j'));
    if (event.ByteSizeLong() == size) return event;
  }
  ADD_FAILURE() << "no event of " << size << " bytes";
  return event;
}

std::string Concatenate(const std::vector<grpc::Slice>& slices) {
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  grpc::Slice single;
  EXPECT_TRUE(buffer.DumpToSingleSlice(&single).ok());
  return std::string(reinterpret_cast<const char*>(single.begin()),
                     single.size());
}

// Around each boundary of a varint's length: 1 byte up to 127, 2 up to
// 16,383, 3 from 16,384.
TEST(EventBatchTest, EntriesAtVarintBoundariesParseBackAsTheEvents) {
  const std::vector<size_t> sizes = {5,     126,   127,   128,   129,
                                     16383, 16384, 16385, 300000};
  std::vector<v1::JobEvent> events;
  std::vector<grpc::Slice> slices;
  size_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    events.push_back(EventOfSize(sizes[i], i));
    ASSERT_EQ(events.back().ByteSizeLong(), sizes[i]);
    grpc::Slice bytes(events.back().SerializeAsString());
    total += AppendBatchEntry(bytes, &slices);
  }
  // A header and the event's own slice per entry.
  ASSERT_EQ(slices.size(), 2 * sizes.size());
  const size_t header_bytes = 2 + 2 + 2 + 3 + 3 + 3 + 4 + 4 + 4;
  size_t event_bytes = 0;
  for (size_t size : sizes) event_bytes += size;
  EXPECT_EQ(total, header_bytes + event_bytes);

  const std::string wire = Concatenate(slices);
  EXPECT_EQ(wire.size(), total);
  v1::JobEventBatch batch;
  ASSERT_TRUE(batch.ParseFromString(wire));
  ASSERT_EQ(batch.events_size(), static_cast<int>(sizes.size()));
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(batch.events(static_cast<int>(i)).SerializeAsString(),
              events[i].SerializeAsString())
        << "event of " << sizes[i] << " bytes";
  }
  // The batch as protobuf itself writes it: the same bytes.
  v1::JobEventBatch expected;
  for (const v1::JobEvent& event : events) *expected.add_events() = event;
  EXPECT_EQ(wire, expected.SerializeAsString());
}

TEST(EventBatchTest, HeadersAreTheTagAndTheVarintLength) {
  struct Case {
    size_t size;
    std::string header;
  };
  const std::vector<Case> cases = {
      {127, std::string("\x0a\x7f", 2)},
      {128, std::string("\x0a\x80\x01", 3)},
      {16383, std::string("\x0a\xff\x7f", 3)},
      {16384, std::string("\x0a\x80\x80\x01", 4)},
  };
  for (const Case& c : cases) {
    std::vector<grpc::Slice> slices;
    grpc::Slice event(std::string(c.size, 'x'));
    EXPECT_EQ(AppendBatchEntry(event, &slices), c.header.size() + c.size);
    ASSERT_EQ(slices.size(), 2u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(slices[0].begin()),
                          slices[0].size()),
              c.header)
        << c.size << " bytes";
    // The event is shared, not copied.
    EXPECT_EQ(slices[1].begin(), event.begin());
  }
}

TEST(EventBatchTest, AnEmptyEventIsAnEntryOfLengthZero) {
  std::vector<grpc::Slice> slices;
  EXPECT_EQ(AppendBatchEntry(grpc::Slice(), &slices), 2u);
  v1::JobEventBatch batch;
  ASSERT_TRUE(batch.ParseFromString(Concatenate(slices)));
  ASSERT_EQ(batch.events_size(), 1);
  EXPECT_EQ(batch.events(0).ByteSizeLong(), 0u);
}

}  // namespace
}  // namespace gradwatch::server
