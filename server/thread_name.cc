#include "server/thread_name.h"

#include <pthread.h>

#include <cstring>

namespace gradwatch::server {

void NameCurrentThread(const char* name) {
#ifdef __linux__
  constexpr size_t kMaxLength = 15;  // the kernel's limit, without the NUL
  char truncated[kMaxLength + 1] = {};
  std::strncpy(truncated, name, kMaxLength);
  pthread_setname_np(pthread_self(), truncated);
#else
  (void)name;
#endif
}

}  // namespace gradwatch::server
