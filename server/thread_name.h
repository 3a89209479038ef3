#ifndef GRADWATCH_SERVER_THREAD_NAME_H_
#define GRADWATCH_SERVER_THREAD_NAME_H_

namespace gradwatch::server {

/// Names the calling thread as `top -H`, `ps -L`, perf and debuggers show
/// it, so that a job's training thread can be told from the server's
/// stream and storage threads. Linux keeps 15 characters; longer names are
/// cut. Harmless where the platform has no thread names.
void NameCurrentThread(const char* name);

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_THREAD_NAME_H_
