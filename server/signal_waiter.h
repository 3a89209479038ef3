#ifndef GRADWATCH_SERVER_SIGNAL_WAITER_H_
#define GRADWATCH_SERVER_SIGNAL_WAITER_H_

namespace gradwatch::server {

/// Blocks SIGTERM and SIGINT in the calling thread and, by inheritance, in
/// every thread it starts afterwards, so that the signals stay pending until
/// WaitForTerminationSignal takes them: no work ever runs in a signal
/// handler. Call first thing in main, before any thread exists.
void BlockTerminationSignals();

/// Waits (sigwait) until SIGTERM or SIGINT arrives and returns its number.
/// Needs BlockTerminationSignals to have run first.
int WaitForTerminationSignal();

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_SIGNAL_WAITER_H_
