#include "driver/mpi_transport.h"

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace clipshard {

namespace {

constexpr int kTag = 17;

// MPI's text for an error code (the code itself when MPI_Error_string fails too).
std::string error_text(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
    return "MPI error code " + std::to_string(rc);
  return std::string(text, static_cast<size_t>(len));
}

// Every MPI return code goes through here: broken infrastructure, so std::runtime_error.
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  throw std::runtime_error(std::string("MPI error in ") + what + ": " + error_text(rc));
}

std::vector<char> pack(const Message& m) {
  std::vector<char> buf(24 + m.text.size());
  const int32_t type = static_cast<int32_t>(m.type);
  std::memcpy(buf.data(), &type, 4);
  std::memcpy(buf.data() + 4, &m.from, 4);
  std::memcpy(buf.data() + 8, &m.shard, 8);
  std::memcpy(buf.data() + 16, &m.value, 8);
  std::memcpy(buf.data() + 24, m.text.data(), m.text.size());
  return buf;
}

Message unpack(const std::vector<char>& buf, int from) {
  if (buf.size() < 24)
    throw std::runtime_error("MPI message from rank " + std::to_string(from) + " is too short");
  Message m;
  int32_t type;
  std::memcpy(&type, buf.data(), 4);
  m.type = static_cast<MessageType>(type);
  m.from = from;
  std::memcpy(&m.shard, buf.data() + 8, 8);
  std::memcpy(&m.value, buf.data() + 16, 8);
  m.text.assign(buf.data() + 24, buf.size() - 24);
  return m;
}

class MpiTransport : public Transport {
 public:
  explicit MpiTransport(const MpiSession& s) : rank_(s.rank()), size_(s.size()) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void send(int to, const Message& message) override {
    Message m = message;
    m.from = rank_;
    const auto buf = pack(m);
    check(MPI_Send(buf.data(), static_cast<int>(buf.size()), MPI_BYTE, to, kTag, MPI_COMM_WORLD),
          "MPI_Send");
  }
  std::optional<Message> receive(double timeout_s) override {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    auto pause = std::chrono::microseconds(50);
    for (;;) {
      int flag = 0;
      MPI_Status status;
      check(MPI_Iprobe(MPI_ANY_SOURCE, kTag, MPI_COMM_WORLD, &flag, &status), "MPI_Iprobe");
      if (flag) {
        int count = 0;
        check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
        std::vector<char> buf(static_cast<size_t>(count));
        check(MPI_Recv(buf.data(), count, MPI_BYTE, status.MPI_SOURCE, kTag, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
        return unpack(buf, status.MPI_SOURCE);
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(5000));
    }
  }

 private:
  int rank_, size_;
};

}  // namespace

std::string mpi_library_version() {
  char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  if (MPI_Get_library_version(version, &length) != MPI_SUCCESS)
    return "unknown (MPI_Get_library_version failed)";
  // `length` counts the terminating NUL in some MPIs: read up to the NUL instead.
  const std::string text(version);
  return text.substr(0, text.find('\n'));
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Until this call an MPI error aborts the job inside the library, without our message.
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
  // Freed on every path, including a failed rank/size query below.
  struct FreeComm {
    MPI_Comm* comm;
    ~FreeComm() { MPI_Comm_free(comm); }
  } free_node{&node};
  check(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank (node)");
  check(MPI_Comm_size(node, &local_size_), "MPI_Comm_size (node)");
}

MpiSession::~MpiSession() {
  // A destructor cannot throw: a failed finalize is reported and the process ends as it would.
  const int rc = MPI_Finalize();
  if (rc != MPI_SUCCESS) {
    std::cerr << "clipshard[rank " << rank_ << "]: MPI_Finalize failed: " << error_text(rc)
              << std::endl;
  }
}

void MpiSession::abort(const std::string& message, int code) const {
  std::cerr << "clipshard[rank " << rank_ << "]: " << message << std::endl;
  // MPI_Abort does not return when it works; its return code is moot, _Exit covers a failure.
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

std::unique_ptr<Transport> make_mpi_transport(const MpiSession& session) {
  return std::make_unique<MpiTransport>(session);
}

}  // namespace clipshard
