// Launcher detection from the environment (driver/mpi_launcher.cpp), which both builds use: the MPI
// one to decide whether to join MPI_COMM_WORLD, the MPI-less one to refuse several ranks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "driver/mpi_transport.h"

namespace clipshard {
namespace {

// Sets the given variables for the test's length and clears every other one the detection reads.
class LauncherEnv {
 public:
  using Vars = std::vector<std::pair<std::string, std::string>>;
  explicit LauncherEnv(const Vars& vars) {
    for (const char* name :
         {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS",
          "MV2_COMM_WORLD_SIZE", "SLURM_STEP_ID", "SLURM_NTASKS"}) {
      if (const char* old = std::getenv(name)) saved_.emplace_back(name, old);
      unsetenv(name);
      names_.push_back(name);
    }
    for (const auto& [name, value] : vars) setenv(name.c_str(), value.c_str(), 1);
  }
  LauncherEnv(const LauncherEnv&) = delete;
  LauncherEnv& operator=(const LauncherEnv&) = delete;
  ~LauncherEnv() {
    for (const auto& name : names_) unsetenv(name.c_str());
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(MpiLauncher, NoLauncherIsOneProcess) {
  LauncherEnv env(LauncherEnv::Vars{
      {"SLURM_NTASKS", "8"}});  // an sbatch script, not an srun step: not a launcher
  EXPECT_FALSE(launched_by_mpi());
  EXPECT_EQ(launcher_world_size(), 1);
}

TEST(MpiLauncher, OpenMpiAndPmiSizes) {
  {
    LauncherEnv env(LauncherEnv::Vars{{"OMPI_COMM_WORLD_SIZE", "5"}});
    EXPECT_TRUE(launched_by_mpi());
    EXPECT_EQ(launcher_world_size(), 5);
  }
  {
    LauncherEnv env(LauncherEnv::Vars{{"PMI_RANK", "0"}, {"PMI_SIZE", "3"}});
    EXPECT_TRUE(launched_by_mpi());
    EXPECT_EQ(launcher_world_size(), 3);
  }
}

TEST(MpiLauncher, SrunWithPmixCountsItsTasks) {
  LauncherEnv env(
      LauncherEnv::Vars{{"PMIX_RANK", "1"}, {"SLURM_STEP_ID", "0"}, {"SLURM_NTASKS", "4"}});
  EXPECT_TRUE(launched_by_mpi());
  EXPECT_EQ(launcher_world_size(), 4);
}

TEST(MpiLauncher, GarbageSizesAreIgnored) {
  LauncherEnv env(LauncherEnv::Vars{{"OMPI_COMM_WORLD_SIZE", "many"}, {"PMI_SIZE", "0"}});
  EXPECT_TRUE(launched_by_mpi());
  EXPECT_EQ(launcher_world_size(), 1);
}

}  // namespace
}  // namespace clipshard
