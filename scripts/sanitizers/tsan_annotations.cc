// ThreadSanitizer annotations for the synchronization inside Debian's
// uninstrumented absl and libgomp, linked into every executable of a
// GRADWATCH_SANITIZE=thread build (cmake/GradwatchOptions.cmake; why and
// what it leaves out: docs/sanitizers.md).
//
// absl::Mutex, absl::CondVar and absl::Notification, and the fork, join
// and critical sections of OpenMP's parallel regions, synchronize through
// atomics and futexes inside those libraries, which TSan cannot see.
// Without this file every access they order is reported as a data race:
// anything an absl::Mutex guards (gradwatch's JobManager, JobHistory and
// stores, and gRPC's own state, gRPC's locks being absl::Mutex too), and
// every access inside a parallel region (gradient sweeps, optimizer
// updates) against the thread that started it.
//
// The definitions below take the place of the libraries' entry points (an
// executable's definitions interpose on a shared library's, for calls from
// gRPC and oneDNN as well), tell TSan what an instrumented build of the
// library would (absl's own __tsan_mutex_* annotations; happens-before
// edges for a notification and for a region's fork and join) and call the
// library's code.
//
// Limits: Condition functions that absl evaluates in another thread are not
// checked (TSan ignores accesses between pre- and post-annotations); a
// CondVar is taken to wait on a mutex held exclusively (as everywhere in
// gradwatch and gRPC); a mutex's destruction is not annotated (TSan forgets
// its state when its memory is freed); absl's SpinLock and the inline
// Notification::HasBeenNotified stay invisible; of OpenMP, only what
// gradwatch's code uses is annotated (parallel regions and critical
// sections, not barriers, worksharing loops or tasks).
//
// Compiled without -fsanitize=thread: it is the annotation layer itself.

#include <dlfcn.h>
#include <grpc/grpc.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#define GRADWATCH_STRINGIFY_INNER(x) #x
#define GRADWATCH_STRINGIFY(x) GRADWATCH_STRINGIFY_INNER(x)

namespace {

// The next definition of `name` after this executable's: the library's.
void* NextSymbol(const std::string& name) {
  void* symbol = dlsym(RTLD_NEXT, name.c_str());
  if (symbol == nullptr) {
    std::fprintf(stderr, "tsan_annotations: %s not found\n", name.c_str());
    std::abort();
  }
  return symbol;
}

// The library's definition of the C function `name`.
template <typename Fn>
Fn RealC(const char* name) {
  return reinterpret_cast<Fn>(NextSymbol(name));
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN
namespace {

// The library's definition of the absl member whose Itanium mangled name,
// after "_ZN4absl" ("_ZNK4absl" for a const member) and absl's inline
// namespace, is `suffix`. A member function is called through a pointer to
// a function taking `this` first, as the ABI passes it.
template <typename Fn>
Fn Real(const char* suffix, bool const_member = false) {
  std::string prefix = const_member ? "_ZNK4absl" : "_ZN4absl";
#if ABSL_OPTION_USE_INLINE_NAMESPACE
  const std::string ns = GRADWATCH_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  prefix += std::to_string(ns.size()) + ns;
#endif
  return reinterpret_cast<Fn>(NextSymbol(prefix + suffix));
}

// True while this thread runs library code called from here. The
// library's entry points call one another through the PLT, so into this
// file (AwaitWithTimeout tail-calls AwaitWithDeadline, and so on): only the
// outermost call is annotated.
thread_local bool in_library = false;

// Calls the library through `f`, returning its result, or 0 when it
// returns nothing.
template <typename F>
auto Call(F f) {
  struct Scope {
    bool outer = in_library;
    Scope() { in_library = true; }
    ~Scope() { in_library = outer; }
  } scope;
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    return 0;
  } else {
    return f();
  }
}

// `lock` returns holding `mu` (shared when `flags` has read_lock).
template <typename F>
auto Locked(Mutex* mu, unsigned flags, F lock) {
  if (in_library) return Call(lock);
  __tsan_mutex_pre_lock(mu, flags);
  auto result = Call(lock);
  __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

template <typename F>
bool TryLocked(Mutex* mu, unsigned flags, F try_lock) {
  if (in_library) return Call(try_lock);
  flags |= __tsan_mutex_try_lock;
  __tsan_mutex_pre_lock(mu, flags);
  const bool locked = Call(try_lock);
  __tsan_mutex_post_lock(
      mu, locked ? flags : flags | __tsan_mutex_try_lock_failed, 0);
  return locked;
}

template <typename F>
void Unlocked(Mutex* mu, unsigned flags, F unlock) {
  if (in_library) {
    Call(unlock);
    return;
  }
  __tsan_mutex_pre_unlock(mu, flags);
  Call(unlock);
  __tsan_mutex_post_unlock(mu, flags);
}

// `wait` releases `mu` while it waits and returns holding it again.
template <typename F>
auto Waited(Mutex* mu, F wait) {
  if (in_library) return Call(wait);
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  return Locked(mu, 0, wait);
}

}  // namespace

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  Locked(this, 0, [&] { real(this); });
}

void Mutex::ReaderLock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  Locked(this, __tsan_mutex_read_lock, [&] { real(this); });
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  return TryLocked(this, 0, [&] { return real(this); });
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  return TryLocked(this, __tsan_mutex_read_lock, [&] { return real(this); });
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  Unlocked(this, 0, [&] { real(this); });
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  Unlocked(this, __tsan_mutex_read_lock, [&] { real(this); });
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex8LockWhenERKNS0_9ConditionE");
  Locked(this, 0, [&] { real(this, cond); });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locked(this, 0, [&] { return real(this, cond, timeout); });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locked(this, 0, [&] { return real(this, cond, deadline); });
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Locked(this, __tsan_mutex_read_lock, [&] { real(this, cond); });
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locked(this, __tsan_mutex_read_lock,
                [&] { return real(this, cond, timeout); });
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locked(this, __tsan_mutex_read_lock,
                [&] { return real(this, cond, deadline); });
}

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex5AwaitERKNS0_9ConditionE");
  Waited(this, [&] { real(this, cond); });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Waited(this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Waited(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static const auto real =
      Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  Waited(mu, [&] { real(this, mu); });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return Waited(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return Waited(mu, [&] { return real(this, mu, deadline); });
}

// Notify sets the flag under the mutex, but a wait that finds it set returns
// after an atomic load inside the library, with no lock: Notify releases and
// a wait that returns notified acquires, on the Notification's address.
void Notification::Notify() {
  static const auto real =
      Real<void (*)(Notification*)>("12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real = Real<void (*)(const Notification*)>(
      "12Notification19WaitForNotificationEv", /*const_member=*/true);
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
      /*const_member=*/true);
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
      /*const_member=*/true);
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl

namespace {

// A parallel region's body, and the addresses its fork and its join
// synchronize on. Two: the threads of a region are ordered after its start
// and before its end, not after one another.
struct Region {
  void (*fn)(void*);
  void* data;
  char fork;
  char join;
};

void RegionBody(void* arg) {
  auto* region = static_cast<Region*>(arg);
  __tsan_acquire(&region->fork);
  region->fn(region->data);
  __tsan_release(&region->join);
}

// The unnamed critical section's lock, for TSan.
char unnamed_critical;

}  // namespace

extern "C" {

// #pragma omp parallel. The fork orders what the starting thread did before
// it ahead of every thread's body, and the join orders every body ahead of
// what follows.
void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads,
                   unsigned flags) {
  static const auto real =
      RealC<void (*)(void (*)(void*), void*, unsigned, unsigned)>(
          "GOMP_parallel");
  Region region{fn, data, 0, 0};
  __tsan_release(&region.fork);
  real(RegionBody, &region, num_threads, flags);
  __tsan_acquire(&region.join);
}

// #pragma omp critical(name): a mutex per name (*pptr is libgomp's lock).
void GOMP_critical_name_start(void** pptr) {
  static const auto real = RealC<void (*)(void**)>("GOMP_critical_name_start");
  __tsan_mutex_pre_lock(pptr, 0);
  real(pptr);
  __tsan_mutex_post_lock(pptr, 0, 0);
}

void GOMP_critical_name_end(void** pptr) {
  static const auto real = RealC<void (*)(void**)>("GOMP_critical_name_end");
  __tsan_mutex_pre_unlock(pptr, 0);
  real(pptr);
  __tsan_mutex_post_unlock(pptr, 0);
}

// #pragma omp critical: one mutex for the whole program.
void GOMP_critical_start() {
  static const auto real = RealC<void (*)()>("GOMP_critical_start");
  __tsan_mutex_pre_lock(&unnamed_critical, 0);
  real();
  __tsan_mutex_post_lock(&unnamed_critical, 0, 0);
}

void GOMP_critical_end() {
  static const auto real = RealC<void (*)()>("GOMP_critical_end");
  __tsan_mutex_pre_unlock(&unnamed_critical, 0);
  real();
  __tsan_mutex_post_unlock(&unnamed_critical, 0);
}

// gRPC: an operation's batch is filled in by the thread that starts it (a
// reactor's StartWrite, a unary call) and its completion runs on a thread
// that takes the operation's tag from a completion queue, both through gRPC
// core. Starting a batch releases on its tag, and taking the tag's event
// acquires, as gRPC core orders them.
grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops,
                                      size_t nops, void* tag, void* reserved) {
  static const auto real =
      RealC<grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*,
                                void*)>("grpc_call_start_batch");
  __tsan_release(tag);
  return real(call, ops, nops, tag, reserved);
}

grpc_call_error grpc_server_request_call(
    grpc_server* server, grpc_call** call, grpc_call_details* details,
    grpc_metadata_array* request_metadata,
    grpc_completion_queue* cq_bound_to_call,
    grpc_completion_queue* cq_for_notification, void* tag_new) {
  static const auto real = RealC<grpc_call_error (*)(
      grpc_server*, grpc_call**, grpc_call_details*, grpc_metadata_array*,
      grpc_completion_queue*, grpc_completion_queue*, void*)>(
      "grpc_server_request_call");
  __tsan_release(tag_new);
  return real(server, call, details, request_metadata, cq_bound_to_call,
              cq_for_notification, tag_new);
}

grpc_call_error grpc_server_request_registered_call(
    grpc_server* server, void* registered_method, grpc_call** call,
    gpr_timespec* deadline, grpc_metadata_array* request_metadata,
    grpc_byte_buffer** optional_payload,
    grpc_completion_queue* cq_bound_to_call,
    grpc_completion_queue* cq_for_notification, void* tag_new) {
  static const auto real = RealC<grpc_call_error (*)(
      grpc_server*, void*, grpc_call**, gpr_timespec*, grpc_metadata_array*,
      grpc_byte_buffer**, grpc_completion_queue*, grpc_completion_queue*,
      void*)>("grpc_server_request_registered_call");
  __tsan_release(tag_new);
  return real(server, registered_method, call, deadline, request_metadata,
              optional_payload, cq_bound_to_call, cq_for_notification, tag_new);
}

grpc_event grpc_completion_queue_next(grpc_completion_queue* cq,
                                      gpr_timespec deadline, void* reserved) {
  static const auto real =
      RealC<grpc_event (*)(grpc_completion_queue*, gpr_timespec, void*)>(
          "grpc_completion_queue_next");
  const grpc_event event = real(cq, deadline, reserved);
  if (event.type == GRPC_OP_COMPLETE) __tsan_acquire(event.tag);
  return event;
}

grpc_event grpc_completion_queue_pluck(grpc_completion_queue* cq, void* tag,
                                       gpr_timespec deadline, void* reserved) {
  static const auto real =
      RealC<grpc_event (*)(grpc_completion_queue*, void*, gpr_timespec, void*)>(
          "grpc_completion_queue_pluck");
  const grpc_event event = real(cq, tag, deadline, reserved);
  if (event.type == GRPC_OP_COMPLETE) __tsan_acquire(event.tag);
  return event;
}

}  // extern "C"
