// The MPI session and transport of a build without MPI (CLIPSHARD_WITH_MPI=OFF; see
// driver/mpi_transport.h): one rank, so run_job_mpi() runs the job in this process. Several ranks
// started by a launcher would each run the whole job into the same directory: refused instead.
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>

#include "driver/mpi_transport.h"
#include "shard/check.h"

namespace clipshard {

std::string mpi_library_version() { return "none (built with CLIPSHARD_WITH_MPI=OFF)"; }

MpiSession::MpiSession(int*, char***) {
  const int ranks = launcher_world_size();
  if (ranks > 1) {
    throw std::runtime_error(
        "this clipshard was built without MPI (CLIPSHARD_WITH_MPI=OFF) but was started as " +
        std::to_string(ranks) +
        " ranks by an MPI launcher; run it as one process (it then uses one worker), or rebuild "
        "with -DCLIPSHARD_WITH_MPI=ON to run on several ranks");
  }
}

MpiSession::~MpiSession() = default;

void MpiSession::abort(const std::string& message, int code) const {
  std::cerr << "clipshard[rank " << rank_ << "]: " << message << std::endl;
  std::_Exit(code);
}

std::unique_ptr<Transport> make_mpi_transport(const MpiSession&) {
  // run_job_mpi() asks for a transport only with more than one rank, which the constructor refused.
  CLIPSHARD_CHECK(false, "make_mpi_transport: this clipshard was built without MPI");
}

}  // namespace clipshard
