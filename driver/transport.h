// How the driver and the workers exchange Messages. MpiTransport (mpi_transport.h) is the real one;
// InProcessTransport connects threads of one process — the single-process mode, and the seam that
// unit-tests the scheduler without mpirun.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "driver/messages.h"

namespace clipshard {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Sends to rank `to`. Throws std::runtime_error on a transport failure.
  virtual void send(int to, const Message& message) = 0;
  // Next message for this rank from any sender, or nullopt after `timeout_s` seconds.
  virtual std::optional<Message> receive(double timeout_s) = 0;
};

// A set of in-process endpoints, one per rank; endpoint(r) is used by the thread playing rank r.
class InProcessNetwork {
 public:
  explicit InProcessNetwork(int size);
  ~InProcessNetwork();
  Transport& endpoint(int rank);

 private:
  struct Mailbox {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Message> queue;
  };
  class Endpoint;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
};

}  // namespace clipshard
