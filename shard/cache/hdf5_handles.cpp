#include "shard/cache/hdf5_handles.h"

#include <vector>

namespace clipshard {

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

void hdf5_init_thread() {
  thread_local bool done = false;
  if (done) return;
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  // No library cleanup at exit: every file is closed explicitly (a cache file counts only once it
  // is closed and renamed), and after a failed write (full disk, file size limit) HDF5 1.10 keeps
  // the dataset open and crashed in its atexit handler closing it (exit status 139 instead of 1).
  // Only effective before the library's first initialisation; harmless (an error code) after.
  static const bool no_atexit = [] { return H5dont_atexit() >= 0; }();
  (void)no_atexit;
  H5open();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  done = true;
}

namespace {

herr_t collect_message(unsigned /*n*/, const H5E_error2_t* error, void* data) {
  auto* messages = static_cast<std::vector<std::string>*>(data);
  if (error->desc && *error->desc) messages->emplace_back(error->desc);
  return 0;
}

}  // namespace

std::string hdf5_error_detail() {
  std::vector<std::string> messages;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_message, &messages);
  H5Eclear2(H5E_DEFAULT);
  if (messages.empty()) return "";
  if (messages.size() == 1 || messages.front() == messages.back()) return messages.front();
  return messages.front() + ": " + messages.back();
}

void throw_hdf5_error(const std::filesystem::path& file, const std::string& what,
                      const std::string& hint) {
  std::string message = file.string() + ": " + what;
  const std::string detail = hdf5_error_detail();
  if (!detail.empty()) message += " (HDF5: " + detail + ")";
  if (!hint.empty()) message += ". " + hint;
  throw Hdf5Error(message);
}

}  // namespace clipshard
