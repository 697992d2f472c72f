#include "driver/signals.h"

#include <csignal>
#include <initializer_list>

namespace clipshard {

namespace {
std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
}
}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaction(sig, &action, nullptr);
}

const std::atomic<bool>& stop_requested() { return g_stop; }
int stop_signal() { return g_signal.load(); }
void set_stop_requested(bool value) {
  g_stop.store(value);
  if (!value) g_signal.store(0);
}

}  // namespace clipshard
