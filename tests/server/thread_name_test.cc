#include "server/thread_name.h"

#include <pthread.h>

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace gradwatch::server {
namespace {

// The name the thread reads back after naming itself `name`.
std::string NameAfterNaming(const char* name) {
  std::string read;
  std::thread([&] {
    NameCurrentThread(name);
    char buffer[64] = {};
    pthread_getname_np(pthread_self(), buffer, sizeof(buffer));
    read = buffer;
  }).join();
  return read;
}

TEST(ThreadNameTest, NamesTheCallingThread) {
  EXPECT_EQ(NameAfterNaming("gw-job"), "gw-job");
}

TEST(ThreadNameTest, CutsANameToTheKernelsFifteenCharacters) {
  // pthread_setname_np itself refuses such a name (ERANGE), keeping the
  // old one; the helper keeps its first 15 characters.
  EXPECT_EQ(NameAfterNaming("gw-a-much-longer-thread-name"), "gw-a-much-longe");
}

}  // namespace
}  // namespace gradwatch::server
