#include "server/watch_reactor.h"

#include <grpc/slice.h>

#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/status_util.h"
#include "server/thread_name.h"

namespace gradwatch::server {
namespace {

// Events taken from the history per lock: large enough for fast replay,
// small enough to keep a reader's private backlog modest.
constexpr size_t kReadBatch = 256;

// How long the pump lets appends gather before it starts the writes they
// call for. A job whose steps take microseconds then costs one wake-up per
// batch of events instead of one per event; a watcher sees its events at
// most this much later.
constexpr absl::Duration kPumpDelay = absl::Milliseconds(1);

// Starts the writes of idle streams whose history grew, for the whole
// server. An append runs on a training thread, which this keeps to queueing
// a task: the thread that wakes the pump is the first one to post after it
// went idle, and only it makes a system call. Never destroyed: streams may
// still post to it while the process exits.
class WritePump {
 public:
  static WritePump& Get() {
    static WritePump* const pump = new WritePump;
    return *pump;
  }

  void Post(std::function<void()> task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }

 private:
  WritePump() {
    std::thread([this] { Loop(); }).detach();
  }

  bool HasTasks() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !tasks_.empty();
  }

  void Loop() {
    NameCurrentThread("gw-stream-pump");
    std::vector<std::function<void()>> batch;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &WritePump::HasTasks));
      }
      absl::SleepFor(kPumpDelay);
      {
        absl::MutexLock lock(&mu_);
        batch.swap(tasks_);
      }
      for (std::function<void()>& task : batch) task();
      batch.clear();
    }
  }

  absl::Mutex mu_;
  std::vector<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
};

class FailedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FailedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

size_t AppendBatchEntry(const grpc::Slice& event,
                        std::vector<grpc::Slice>* slices) {
  // Field 1, length-delimited, then the length as a varint: at most
  // 1 + 5 bytes, which grpc_slice_malloc keeps inline in the slice, so
  // the header allocates nothing.
  size_t header_size = 2;
  for (uint64_t rest = event.size() >> 7; rest != 0; rest >>= 7) {
    ++header_size;
  }
  grpc_slice header = grpc_slice_malloc(header_size);
  uint8_t* out = GRPC_SLICE_START_PTR(header);
  *out++ = 0x0A;
  uint64_t length = event.size();
  while (length >= 0x80) {
    *out++ = static_cast<uint8_t>(length | 0x80);
    length >>= 7;
  }
  *out = static_cast<uint8_t>(length);
  slices->emplace_back(header, grpc::Slice::STEAL_REF);
  slices->push_back(event);
  return header_size + event.size();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchReactor::Fail(
    const grpc::Status& status) {
  return new FailedStream(status);
}

absl::Status WatchReactor::ParseRequest(
    const grpc::ByteBuffer& request, google::protobuf::MessageLite* message) {
  grpc::Slice bytes;
  if (!request.Valid() || !request.DumpToSingleSlice(&bytes).ok() ||
      !message->ParseFromArray(bytes.begin(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a valid ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchReactor::Start(
    std::shared_ptr<JobHistory> history, uint64_t from_step,
    std::function<void()> on_cancel, JobObserver* observer,
    StreamFraming framing) {
  auto reactor = std::make_shared<WatchReactor>(
      std::move(history), from_step, std::move(on_cancel), observer, framing);
  absl::Status added = reactor->history_->AddListener(reactor);
  if (!added.ok()) {
    if (reactor->on_cancel_) reactor->on_cancel_();
    return Fail(ToGrpcStatus(added));
  }
  {
    absl::MutexLock lock(&reactor->mu_);
    reactor->self_ = reactor;
  }
  // Matched by OnWatcherEnded in OnDone, which gRPC calls for every
  // reactor returned from here.
  if (observer != nullptr) observer->OnWatcherStarted();
  reactor->Advance();
  return reactor.get();
}

WatchReactor::WatchReactor(std::shared_ptr<JobHistory> history,
                           uint64_t from_step, std::function<void()> on_cancel,
                           JobObserver* observer, StreamFraming framing)
    : history_(std::move(history)),
      from_step_(from_step),
      framing_(framing),
      on_cancel_(std::move(on_cancel)),
      observer_(observer),
      next_sequence_(history_->FirstSequenceAtStep(from_step)) {}

void WatchReactor::OnHistoryChanged() {
  {
    absl::MutexLock lock(&mu_);
    // A write in flight takes the new events when it completes.
    if (writing_ || finished_ || self_ == nullptr || wake_posted_) {
      return;
    }
    wake_posted_ = true;
  }
  PostAdvance();
}

void WatchReactor::PostAdvance() {
  WritePump::Get().Post([self = shared_from_this()] {
    {
      absl::MutexLock lock(&self->mu_);
      self->wake_posted_ = false;
    }
    self->Advance();
  });
}

void WatchReactor::OnWriteDone(bool ok) {
  uint64_t written = 0;
  bool gather = false;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    in_flight_.Clear();
    written = in_flight_events_;
    in_flight_events_ = 0;
    // A failed write means the call is over (cancelled or disconnected).
    if (!ok) broken_ = true;
    // A batched stream that has caught up with a live job lets the next
    // events gather on the pump, as an idle stream's do, instead of
    // writing the few that arrived during this write: per-message costs
    // are then paid once per pump delay, not every few events. A batch cut
    // by its limits means a replay or a backlog: the next write starts at
    // once.
    gather = ok && framing_ == StreamFraming::kBatched &&
             in_flight_caught_up_ && !wake_posted_;
    if (gather) wake_posted_ = true;
  }
  if (ok && observer_ != nullptr) observer_->OnEventsStreamed(written);
  if (gather) {
    PostAdvance();
  } else {
    Advance();
  }
}

void WatchReactor::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    broken_ = true;
  }
  if (on_cancel_) on_cancel_();
  Advance();
}

void WatchReactor::OnDone() {
  history_->RemoveListener(this);
  if (observer_ != nullptr) observer_->OnWatcherEnded();
  std::shared_ptr<WatchReactor> self;
  {
    absl::MutexLock lock(&mu_);
    self = std::move(self_);
  }
  // `self` may be the last owner: *this goes away when it does.
}

void WatchReactor::Advance() {
  bool write = false;
  bool finish = false;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_ || self_ == nullptr) return;
    if (broken_) {
      finished_ = finish = true;
      status = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
    } else {
      const bool batched = framing_ == StreamFraming::kBatched;
      size_t events = 0;
      size_t bytes = 0;
      bool caught_up = false;
      batch_.clear();
      while (true) {
        if (pending_.empty()) {
          const bool closed =
              history_->ReadSerialized(next_sequence_, kReadBatch, &pending_);
          next_sequence_ += pending_.size();
          if (pending_.empty()) {
            caught_up = true;
            // A closed history's last batch goes out first; the next
            // Advance finishes the stream.
            if (closed && events == 0) finished_ = finish = true;
            break;
          }
        }
        SerializedEvent& event = pending_.front();
        // Live events of steps before from_step (the job had not reached
        // it when the stream started) are not part of the replay.
        if (event.step < from_step_) {
          pending_.pop_front();
          continue;
        }
        if (events > 0 && (!batched || events >= kMaxBatchEvents ||
                           bytes + event.bytes.size() > kMaxBatchBytes)) {
          break;
        }
        // The buffer refers to the history's slices: no copy of the bytes.
        if (batched) {
          bytes += AppendBatchEntry(event.bytes, &batch_);
        } else {
          batch_.push_back(std::move(event.bytes));
        }
        pending_.pop_front();
        ++events;
      }
      if (events > 0) {
        grpc::ByteBuffer buffer(batch_.data(), batch_.size());
        in_flight_.Swap(&buffer);
        in_flight_events_ = events;
        in_flight_caught_up_ = caught_up;
        writing_ = write = true;
      }
      batch_.clear();
    }
  }
  // in_flight_ is left alone until OnWriteDone.
  if (write) {
    StartWrite(&in_flight_);
  } else if (finish) {
    Finish(status);
  }
}

}  // namespace gradwatch::server
