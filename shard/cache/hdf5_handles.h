// RAII owners of HDF5 identifiers and the checks every HDF5 call of the cache goes through.
// Internal to shard/cache (includes hdf5.h; the public headers do not).
//
// Threads: every public entry point of the cache (writer, reader, merge) holds hdf5_mutex() while
// it calls HDF5, so the cache may be used from several threads even with an HDF5 built without
// --enable-threadsafe (Debian's is thread-safe, many cluster modules are not). One writer or
// reader object must still be used by one thread at a time (its own state is not locked).
#pragma once

#include <hdf5.h>

#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace clipshard {

// Serialises all HDF5 calls of this library. Recursive: entry points may nest.
std::recursive_mutex& hdf5_mutex();

// Initialises HDF5 and turns off its automatic error printing for the calling thread (the error
// stack is per thread in thread-safe builds). Cheap after the first call on a thread.
void hdf5_init_thread();

// The calling thread's HDF5 error stack as one line, outermost then innermost message
// ("unable to open file: file signature not found"); "" when empty. Clears the stack.
std::string hdf5_error_detail();

// Thrown for every HDF5 failure; the message names the file, what failed and HDF5's reason.
class Hdf5Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Hdf5Error("<file>: <what>: <hdf5 detail>[ <hint>]").
[[noreturn]] void throw_hdf5_error(const std::filesystem::path& file, const std::string& what,
                                   const std::string& hint = "");

// `status` (herr_t or htri_t) when >= 0, else throws.
inline int h5_check(int status, const std::filesystem::path& file, const std::string& what) {
  if (status < 0) throw_hdf5_error(file, what);
  return status;
}
// `id` when valid (>= 0), else throws.
inline hid_t h5_check_id(hid_t id, const std::filesystem::path& file, const std::string& what) {
  if (id < 0) throw_hdf5_error(file, what);
  return id;
}

// Owns one HDF5 identifier, closed with `Close`. Non-copyable, movable. The destructor ignores a
// close failure (destructors must not throw); use close() where a failure matters (files).
template <herr_t (*Close)(hid_t)>
class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) : id_(id) {}
  ~H5Handle() { reset(); }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  explicit operator bool() const { return valid(); }

  void reset() noexcept {
    if (id_ >= 0) Close(id_);
    id_ = H5I_INVALID_HID;
  }
  // Closes and throws Hdf5Error when HDF5 reports a failure (e.g. flushing a file on a full disk).
  void close(const std::filesystem::path& file, const std::string& what) {
    const hid_t id = std::exchange(id_, H5I_INVALID_HID);
    if (id >= 0) h5_check(Close(id), file, what);
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using H5File = H5Handle<H5Fclose>;
using H5Group = H5Handle<H5Gclose>;
using H5Dataset = H5Handle<H5Dclose>;
using H5Dataspace = H5Handle<H5Sclose>;
using H5Type = H5Handle<H5Tclose>;
using H5PropertyList = H5Handle<H5Pclose>;
using H5Attribute = H5Handle<H5Aclose>;

}  // namespace clipshard
