// SIGTERM, SIGINT and SIGUSR1 (Slurm's warning signal with --signal=B:USR1@T) ask every rank to
// finish its current batch, keep what is complete, and exit with kExitInterrupted.
#pragma once

#include <atomic>

namespace clipshard {

// Process exit statuses (docs/CONFIG.md, docs/SLURM.md).
constexpr int kExitOk = 0;            // finished (bad rows included)
constexpr int kExitError = 1;         // broken infrastructure or bad config: message on stderr
constexpr int kExitUsage = 2;         // bad command line
constexpr int kExitInterrupted = 75;  // stopped on a signal; run the same command again to resume

// Installs the handlers (idempotent). The flag is raised by the first signal.
void install_stop_signal_handlers();
const std::atomic<bool>& stop_requested();
// The signal that raised the flag (0 if none).
int stop_signal();
// For tests: raise/lower the flag as a signal would (lowering it also forgets the signal).
void set_stop_requested(bool value);

}  // namespace clipshard
