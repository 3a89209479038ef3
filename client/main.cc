// gradwatch: the command-line client. Flag parsing and wiring only; the
// commands live in client/commands.cc.
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "client/cli_args.h"
#include "client/commands.h"

int main(int argc, char** argv) {
  namespace client = ::gradwatch::client;
  const std::vector<std::string> args(argv + 1, argv + argc);
  const char* server_env = std::getenv("GRADWATCH_SERVER");
  absl::StatusOr<client::CommandLine> line = client::ParseCommandLine(
      args, server_env != nullptr ? std::optional<std::string>(server_env)
                                  : std::nullopt);
  if (!line.ok()) {
    std::cerr << "gradwatch: " << line.status().message()
              << "\nrun 'gradwatch --help' for usage\n";
    return client::kExitUsage;
  }
  const bool terminal = isatty(STDOUT_FILENO) == 1;
  winsize size{};
  const int width = terminal && ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0
                        ? size.ws_col
                        : 0;
  return client::RunCommand(*line, std::cout, std::cerr, terminal, width);
}
