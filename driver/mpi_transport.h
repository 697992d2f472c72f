// MPI: the session (init/finalize as an object), launcher detection, and the Transport over
// MPI_COMM_WORLD. Only mpi_transport.cpp includes mpi.h. A build without MPI
// (CLIPSHARD_WITH_MPI=OFF) compiles mpi_transport_none.cpp instead: one rank only, and a clear
// error when a launcher started several. Launcher detection (mpi_launcher.cpp) needs no MPI.
#pragma once

#include <memory>
#include <string>

#include "driver/transport.h"

namespace clipshard {

// True when this process was started by an MPI launcher (mpirun/mpiexec, or srun with PMIx/PMI):
// then it joins MPI_COMM_WORLD; otherwise clipshard runs as a single process without MPI at all.
bool launched_by_mpi();

// How many ranks the launcher started, as its environment says (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// MV2_COMM_WORLD_SIZE, MPI_LOCALNRANKS, or SLURM_NTASKS under srun); 1 when none of them is set.
int launcher_world_size();

// The MPI library's own version string (MPI_Get_library_version, allowed before MPI_Init: no MPI
// runtime is started), its first line; in a build without MPI, a line that says so.
std::string mpi_library_version();

// MPI_Init_thread(FUNNELED) in the constructor, MPI_Finalize in the destructor. Errors on
// MPI_COMM_WORLD are returned (not fatal) and turned into std::runtime_error. Non-copyable.
// Without MPI: rank 0 of 1, and the constructor throws std::runtime_error when the launcher
// started more than one rank (launcher_world_size() > 1).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  // The rank among those on the same node (selects the GPU).
  int local_rank() const { return local_rank_; }
  // How many ranks run on this node.
  int local_size() const { return local_size_; }
  // Ends every rank of the job (MPI_Abort) after printing `message` with this rank.
  [[noreturn]] void abort(const std::string& message, int code) const;

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

// Messages over MPI_COMM_WORLD (one tag; blocking sends of small packed buffers; receive polls
// with MPI_Iprobe so a silent peer can be timed out).
std::unique_ptr<Transport> make_mpi_transport(const MpiSession& session);

}  // namespace clipshard
