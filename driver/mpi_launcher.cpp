// Launcher detection from the environment: shared by the MPI and the MPI-less builds, so that a
// lean binary started by mpirun/srun can tell the user what it cannot do.
#include <cstdlib>
#include <string>

#include "driver/mpi_transport.h"

namespace clipshard {

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                           "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(name)) return true;
  }
  return false;
}

int launcher_world_size() {
  // SLURM_NTASKS counts the job's tasks, which are the ranks only when srun started this process.
  const bool under_srun = std::getenv("SLURM_STEP_ID") != nullptr;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE",
                           "MPI_LOCALNRANKS", under_srun ? "SLURM_NTASKS" : nullptr}) {
    if (name == nullptr) continue;
    const char* value = std::getenv(name);
    if (value == nullptr) continue;
    try {
      const int n = std::stoi(value);
      if (n > 0) return n;
    } catch (const std::exception&) {
      // Not a number: ask the next variable.
    }
  }
  return 1;
}

}  // namespace clipshard
