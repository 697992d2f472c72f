#include "driver/transport.h"

#include <chrono>
#include <stdexcept>

namespace clipshard {

class InProcessNetwork::Endpoint : public Transport {
 public:
  Endpoint(InProcessNetwork* net, int rank) : net_(net), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(net_->mailboxes_.size()); }
  void send(int to, const Message& message) override {
    if (to < 0 || to >= size()) throw std::runtime_error("in-process send to bad rank");
    Mailbox& box = *net_->mailboxes_[to];
    Message m = message;
    m.from = rank_;
    {
      std::lock_guard<std::mutex> lock(box.mutex);
      box.queue.push_back(std::move(m));
    }
    box.ready.notify_one();
  }
  std::optional<Message> receive(double timeout_s) override {
    Mailbox& box = *net_->mailboxes_[rank_];
    std::unique_lock<std::mutex> lock(box.mutex);
    if (!box.ready.wait_for(lock, std::chrono::duration<double>(timeout_s),
                            [&] { return !box.queue.empty(); }))
      return std::nullopt;
    Message m = std::move(box.queue.front());
    box.queue.pop_front();
    return m;
  }

 private:
  InProcessNetwork* net_;
  int rank_;
};

InProcessNetwork::InProcessNetwork(int size) {
  for (int r = 0; r < size; ++r) {
    mailboxes_.push_back(std::make_unique<Mailbox>());
    endpoints_.push_back(std::make_unique<Endpoint>(this, r));
  }
}

InProcessNetwork::~InProcessNetwork() = default;

Transport& InProcessNetwork::endpoint(int rank) { return *endpoints_.at(rank); }

}  // namespace clipshard
