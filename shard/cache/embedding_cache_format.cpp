#include "shard/cache/embedding_cache_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace clipshard::cache_format {

namespace {

constexpr size_t kEmbeddingChunkBytes = 256 * 1024;  // random lookups read one chunk
// Chunk cache for reading compressed embeddings. Uncompressed ones are read with no chunk cache:
// HDF5 then reads just the requested row, where a cache reads and keeps a whole 256 KiB chunk per
// miss: an order of magnitude fewer random lookups per second, and memory grows
// (docs/PERFORMANCE.md, "Embedding cache lookups").
constexpr size_t kCompressedChunkCacheBytes = 4 * 1024 * 1024;

std::string escape_name(const std::string& name) {
  if (name == ".") return "%2E";
  std::string out;
  for (char c : name) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

H5PropertyList file_access(const std::filesystem::path& path, bool writing) {
  H5PropertyList fapl(h5_check_id(H5Pcreate(H5P_FILE_ACCESS), path, "H5Pcreate(file access)"));
  // Cache files are immutable once renamed into place and each temporary file has one writer, so
  // HDF5's flock adds nothing, and it fails on file systems without flock (some NFS/Lustre mounts).
  h5_check(H5Pset_file_locking(fapl.get(), false, true), path, "H5Pset_file_locking");
  if (writing) {
    // The 1.10 file format: superblock v3, object header v2 and extensible-array chunk indexes
    // are all checksummed, so a damaged file is reported as an error rather than read as garbage
    // (or crashing). Readable by HDF5 >= 1.10 (h5py has shipped it since 2.8, 2018).
    h5_check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), path,
             "H5Pset_libver_bounds");
    // Closing the file fails while an object in it is still open (a bug, not a silent delay).
    h5_check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_SEMI), path, "H5Pset_fclose_degree");
  }
  return fapl;
}

// Variable-length strings live in the global heap, which HDF5 does not checksum: a damaged file
// can crash H5Aread. Fixed-length strings sit in the (checksummed) object header.
H5Type fixed_string_type(size_t size, const std::filesystem::path& path) {
  H5Type type(h5_check_id(H5Tcopy(H5T_C_S1), path, "H5Tcopy(string)"));
  h5_check(H5Tset_size(type.get(), std::max<size_t>(size, 1)), path, "H5Tset_size(string)");
  h5_check(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), path, "H5Tset_strpad(string)");
  h5_check(H5Tset_cset(type.get(), H5T_CSET_UTF8), path, "H5Tset_cset(string)");
  return type;
}

// IEEE binary16, little endian: the type numpy/h5py call float16.
H5Type half_type(const std::filesystem::path& path) {
  H5Type type(h5_check_id(H5Tcopy(H5T_IEEE_F32LE), path, "H5Tcopy(float16)"));
  h5_check(H5Tset_fields(type.get(), 15, 10, 5, 0, 10), path, "H5Tset_fields(float16)");
  h5_check(H5Tset_size(type.get(), 2), path, "H5Tset_size(float16)");
  h5_check(H5Tset_ebias(type.get(), 15), path, "H5Tset_ebias(float16)");
  return type;
}

void write_string_attribute(hid_t object, const char* name, const std::string& value,
                            const std::filesystem::path& path) {
  H5Type type = fixed_string_type(value.size(), path);
  H5Dataspace space(h5_check_id(H5Screate(H5S_SCALAR), path, "H5Screate"));
  H5Attribute attr(
      h5_check_id(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path,
                  std::string("creating attribute ") + name));
  std::string data = value;
  data.resize(std::max<size_t>(value.size(), 1), '\0');
  h5_check(H5Awrite(attr.get(), type.get(), data.data()), path,
           std::string("writing attribute ") + name);
}

void write_int_attribute(hid_t object, const char* name, int64_t value,
                         const std::filesystem::path& path) {
  H5Dataspace space(h5_check_id(H5Screate(H5S_SCALAR), path, "H5Screate"));
  H5Attribute attr(
      h5_check_id(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                  path, std::string("creating attribute ") + name));
  h5_check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), path,
           std::string("writing attribute ") + name);
}

[[noreturn]] void throw_layout_error(const std::filesystem::path& path, const std::string& what) {
  H5Eclear2(H5E_DEFAULT);
  throw Hdf5Error(path.string() + ": " + what +
                  ". The file is not a valid clipshard embedding cache (corrupt, or written by "
                  "another tool); delete it and the next run rebuilds it.");
}

H5Attribute open_attribute(hid_t object, const char* name, const std::filesystem::path& path,
                           const std::string& where) {
  const htri_t exists = H5Aexists(object, name);
  if (exists < 0)
    throw_hdf5_error(path, "reading attribute '" + std::string(name) + "' of " + where);
  if (exists == 0)
    throw_layout_error(path, "attribute '" + std::string(name) + "' missing on " + where);
  return H5Attribute(h5_check_id(H5Aopen(object, name, H5P_DEFAULT), path,
                                 "opening attribute '" + std::string(name) + "' of " + where));
}

std::string read_string_attribute(hid_t object, const char* name, const std::filesystem::path& path,
                                  const std::string& where) {
  H5Attribute attr = open_attribute(object, name, path, where);
  const std::string what = "reading attribute '" + std::string(name) + "' of " + where;
  H5Type file_type(h5_check_id(H5Aget_type(attr.get()), path, what));
  if (H5Tget_class(file_type.get()) != H5T_STRING)
    throw_layout_error(path,
                       "attribute '" + std::string(name) + "' of " + where + " is not a string");
  H5Dataspace space(h5_check_id(H5Aget_space(attr.get()), path, what));
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw_layout_error(path,
                       "attribute '" + std::string(name) + "' of " + where + " is not scalar");
  // Only fixed-length strings (what create_file writes): reading a variable-length one trusts
  // unchecksummed heap data.
  if (h5_check(H5Tis_variable_str(file_type.get()), path, what))
    throw_layout_error(
        path, "attribute '" + std::string(name) + "' of " + where + " is a variable-length string");
  const size_t size = H5Tget_size(file_type.get());
  if (size == 0 || size > 65536)
    throw_layout_error(path, "attribute '" + std::string(name) + "' of " + where + " has size " +
                                 std::to_string(size));
  H5Type mem_type = fixed_string_type(size, path);
  // h5py writes numpy bytes as ASCII strings: read them as such (ASCII is UTF-8), since HDF5 has
  // no conversion between the two character sets.
  const H5T_cset_t cset = H5Tget_cset(file_type.get());
  if (cset == H5T_CSET_ASCII)
    h5_check(H5Tset_cset(mem_type.get(), H5T_CSET_ASCII), path, "H5Tset_cset(string)");
  std::string value(size, '\0');
  h5_check(H5Aread(attr.get(), mem_type.get(), value.data()), path, what);
  value.resize(std::min(value.find('\0'), value.size()));
  return value;
}

int64_t read_int_attribute(hid_t object, const char* name, const std::filesystem::path& path,
                           const std::string& where) {
  H5Attribute attr = open_attribute(object, name, path, where);
  const std::string what = "reading attribute '" + std::string(name) + "' of " + where;
  H5Type file_type(h5_check_id(H5Aget_type(attr.get()), path, what));
  if (H5Tget_class(file_type.get()) != H5T_INTEGER)
    throw_layout_error(path,
                       "attribute '" + std::string(name) + "' of " + where + " is not an integer");
  H5Dataspace space(h5_check_id(H5Aget_space(attr.get()), path, what));
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw_layout_error(path,
                       "attribute '" + std::string(name) + "' of " + where + " is not scalar");
  int64_t value = 0;
  h5_check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), path, what);
  return value;
}

// HDF5 1.12 renamed the link iteration API; clusters ship both 1.10 and 1.12+.
#if H5_VERSION_GE(1, 12, 0)
using LinkInfo = H5L_info2_t;
#define CLIPSHARD_H5_LITERATE H5Literate2
#else
using LinkInfo = H5L_info_t;
#define CLIPSHARD_H5_LITERATE H5Literate
#endif

herr_t collect_name(hid_t, const char* name, const LinkInfo*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

std::vector<std::string> child_names(hid_t group, const std::filesystem::path& path,
                                     const std::string& where) {
  std::vector<std::string> names;
  hsize_t index = 0;
  h5_check(CLIPSHARD_H5_LITERATE(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, &names),
           path, "listing " + where);
  return names;
}

// The dataset's dimensions; throws unless it has `rank` of them.
std::vector<hsize_t> dims_of(hid_t dataset, int rank, const std::filesystem::path& path,
                             const std::string& where) {
  H5Dataspace space(h5_check_id(H5Dget_space(dataset), path, "reading the shape of " + where));
  const int actual = H5Sget_simple_extent_ndims(space.get());
  if (actual != rank)
    throw_layout_error(path, where + " has " + std::to_string(actual) + " dimensions, expected " +
                                 std::to_string(rank));
  std::vector<hsize_t> dims(rank);
  h5_check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), path,
           "reading the shape of " + where);
  return dims;
}

void check_type(hid_t dataset, H5T_class_t cls, size_t size, const std::filesystem::path& path,
                const std::string& where, const char* expected) {
  H5Type type(h5_check_id(H5Dget_type(dataset), path, "reading the type of " + where));
  if (H5Tget_class(type.get()) != cls || H5Tget_size(type.get()) != size)
    throw_layout_error(path, where + " is not " + std::string(expected));
}

H5Dataset create_dataset(hid_t group, const char* name, hid_t type, int rank, hsize_t cols,
                         hsize_t chunk_rows, int gzip_level, const std::filesystem::path& path,
                         const std::string& where) {
  const hsize_t dims[2] = {0, cols};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, cols};
  const hsize_t chunk[2] = {chunk_rows, cols};
  H5Dataspace space(h5_check_id(H5Screate_simple(rank, dims, max_dims), path, "H5Screate_simple"));
  H5PropertyList dcpl(h5_check_id(H5Pcreate(H5P_DATASET_CREATE), path, "H5Pcreate(dataset)"));
  h5_check(H5Pset_chunk(dcpl.get(), rank, chunk), path, "H5Pset_chunk");
  h5_check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), path, "H5Pset_fill_time");
  if (gzip_level > 0) {
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
      throw_hdf5_error(path, "gzip requested but this HDF5 has no deflate filter");
    h5_check(H5Pset_shuffle(dcpl.get()), path, "H5Pset_shuffle");
    h5_check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(gzip_level)), path, "H5Pset_deflate");
  }
  return H5Dataset(
      h5_check_id(H5Dcreate2(group, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                  path, "creating " + where + "/" + name));
}

void append_rows(hid_t dataset, hid_t mem_type, int64_t old_rows, size_t n, hsize_t cols, int rank,
                 const void* data, const std::filesystem::path& path, const std::string& where) {
  const hsize_t new_dims[2] = {static_cast<hsize_t>(old_rows) + n, cols};
  h5_check(H5Dset_extent(dataset, new_dims), path, "extending " + where);
  H5Dataspace file_space(h5_check_id(H5Dget_space(dataset), path, "H5Dget_space " + where));
  const hsize_t start[2] = {static_cast<hsize_t>(old_rows), 0};
  const hsize_t count[2] = {n, cols};
  h5_check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
           path, "selecting rows of " + where);
  H5Dataspace mem_space(h5_check_id(H5Screate_simple(rank, count, nullptr), path, "H5Screate"));
  h5_check(H5Dwrite(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data), path,
           "writing " + where + " (disk full?)");
}

}  // namespace

const char* dtype_name(DType dtype) { return dtype == DType::kFloat16 ? "float16" : "float32"; }
size_t dtype_size(DType dtype) { return dtype == DType::kFloat16 ? 2 : 4; }

void validate_table(const CacheTable& table) {
  if (table.model_id.empty() || table.pipeline.empty())
    throw std::invalid_argument("embedding cache table '" + table.to_string() +
                                "': model_id and pipeline must not be empty");
  if (table.kind != "image" && table.kind != "text")
    throw std::invalid_argument("embedding cache table '" + table.to_string() +
                                "': kind must be \"image\" or \"text\"");
}

std::string table_group_path(const CacheTable& table) {
  return std::string(kModelsGroup) + "/" + escape_name(table.model_id) + "/" +
         escape_name(table.kind) + "/" + escape_name(table.pipeline);
}

H5File create_file(const std::filesystem::path& path) {
  hdf5_init_thread();
  H5PropertyList fapl = file_access(path, true);
  H5File file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (!file) {
    throw_hdf5_error(path, "cannot create the embedding cache file",
                     "Check that the directory exists and is writable.");
  }
  H5Group root(h5_check_id(H5Gopen2(file.get(), "/", H5P_DEFAULT), path, "opening /"));
  write_string_attribute(root.get(), "format", kFormatName, path);
  write_int_attribute(root.get(), "version", kFormatVersion, path);
  H5Group models(
      h5_check_id(H5Gcreate2(file.get(), kModelsGroup, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path,
                  "creating /models"));
  return file;
}

H5File open_file(const std::filesystem::path& path) {
  hdf5_init_thread();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Hdf5Error(path.string() + ": embedding cache file not found (or not a regular file)");
  H5PropertyList fapl = file_access(path, false);
  H5File file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!file) {
    throw_hdf5_error(path, "cannot open the embedding cache",
                     "The file is not an HDF5 file, or is truncated or corrupt; delete it and the "
                     "next run rebuilds it.");
  }
  H5Group root(h5_check_id(H5Gopen2(file.get(), "/", H5P_DEFAULT), path, "opening /"));
  const std::string format = read_string_attribute(root.get(), "format", path, "/");
  if (format != kFormatName)
    throw_layout_error(path,
                       "root attribute format is '" + format + "', expected '" + kFormatName + "'");
  const int64_t version = read_int_attribute(root.get(), "version", path, "/");
  if (version != kFormatVersion) {
    throw Hdf5Error(path.string() + ": embedding cache format version " + std::to_string(version) +
                    "; this clipshard reads version " + std::to_string(kFormatVersion) +
                    ". Use the clipshard that wrote it, or delete the file to rebuild the cache.");
  }
  return file;
}

std::filesystem::path temp_path_for(const std::filesystem::path& path) {
  return path.string() + ".tmp";
}

void fsync_and_rename(const std::filesystem::path& temp, const std::filesystem::path& path) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno) +
                             ". Check free space and permissions of " +
                             path.parent_path().string());
  };
  const int fd = ::open(temp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot reopen " + temp.string() + " to sync it");
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync of " + temp.string() + " failed");
  }
  ::close(fd);
  if (std::rename(temp.c_str(), path.c_str()) != 0)
    fail("cannot rename " + temp.string() + " to " + path.string());
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {  // best effort: the rename is done; a failed directory sync is not fatal
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

std::vector<TableInfo> list_tables(hid_t file, const std::filesystem::path& path) {
  std::vector<TableInfo> tables;
  const htri_t has_models = H5Lexists(file, kModelsGroup, H5P_DEFAULT);
  if (has_models < 0) throw_hdf5_error(path, "looking up /models");
  if (has_models == 0) throw_layout_error(path, "group /models missing");
  H5Group models(h5_check_id(H5Gopen2(file, kModelsGroup, H5P_DEFAULT), path, "opening /models"));
  for (const std::string& model : child_names(models.get(), path, "/models")) {
    const std::string model_path = std::string(kModelsGroup) + "/" + model;
    H5Group model_group(h5_check_id(H5Gopen2(file, model_path.c_str(), H5P_DEFAULT), path,
                                    "opening " + model_path));
    for (const std::string& kind : child_names(model_group.get(), path, model_path)) {
      const std::string kind_path = model_path + "/" + kind;
      H5Group kind_group(h5_check_id(H5Gopen2(file, kind_path.c_str(), H5P_DEFAULT), path,
                                     "opening " + kind_path));
      for (const std::string& pipeline : child_names(kind_group.get(), path, kind_path)) {
        TableInfo info;
        info.group = kind_path + "/" + pipeline;
        H5Group group(h5_check_id(H5Gopen2(file, info.group.c_str(), H5P_DEFAULT), path,
                                  "opening " + info.group));
        info.table.model_id = read_string_attribute(group.get(), "model_id", path, info.group);
        info.table.kind = read_string_attribute(group.get(), "kind", path, info.group);
        info.table.pipeline = read_string_attribute(group.get(), "pipeline", path, info.group);
        if (table_group_path(info.table) != info.group)
          throw_layout_error(path,
                             info.group + " holds attributes of table " + info.table.to_string());
        const int64_t dim = read_int_attribute(group.get(), "dim", path, info.group);
        if (dim <= 0 || dim > (1 << 20))
          throw_layout_error(path, info.group + " has dim " + std::to_string(dim));
        info.dim = static_cast<int>(dim);
        const std::string dtype = read_string_attribute(group.get(), "dtype", path, info.group);
        if (dtype == "float32") {
          info.dtype = DType::kFloat32;
        } else if (dtype == "float16") {
          info.dtype = DType::kFloat16;
        } else {
          throw_layout_error(path, info.group + " has dtype '" + dtype + "'");
        }
        TableDescription& d = info.description;
        d.model_name = read_string_attribute(group.get(), "model_name", path, info.group);
        d.model_path = read_string_attribute(group.get(), "model_path", path, info.group);
        d.model_format = read_string_attribute(group.get(), "model_format", path, info.group);
        d.fingerprint = read_string_attribute(group.get(), "model_fingerprint", path, info.group);
        d.precision = read_string_attribute(group.get(), "precision", path, info.group);
        const int64_t normalized = read_int_attribute(group.get(), "normalized", path, info.group);
        if (normalized < -1 || normalized > 1)
          throw_layout_error(path, info.group + " has normalized " + std::to_string(normalized));
        d.normalized = static_cast<int>(normalized);
        const int64_t fence_rows = read_int_attribute(group.get(), "fence_rows", path, info.group);
        if (fence_rows != kFenceRows)
          throw_layout_error(path, info.group + " has fence_rows " + std::to_string(fence_rows) +
                                       ", expected " + std::to_string(kFenceRows));
        info.rows = TableSource(file, path, info).rows();  // checks the four datasets
        tables.push_back(std::move(info));
      }
    }
  }
  return tables;
}

TableAppender::TableAppender(hid_t file, const std::filesystem::path& path, const CacheTable& table,
                             int dim, DType dtype, int gzip_level,
                             const TableDescription& description)
    : path_(path), group_path_(table_group_path(table)), dim_(dim), dtype_(dtype) {
  const std::string& group_path = group_path_;
  H5PropertyList lcpl(h5_check_id(H5Pcreate(H5P_LINK_CREATE), path, "H5Pcreate(link)"));
  h5_check(H5Pset_create_intermediate_group(lcpl.get(), 1), path,
           "H5Pset_create_intermediate_group");
  group_ = H5Group(
      h5_check_id(H5Gcreate2(file, group_path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), path,
                  "creating " + group_path));
  write_string_attribute(group_.get(), "model_id", table.model_id, path);
  write_string_attribute(group_.get(), "kind", table.kind, path);
  write_string_attribute(group_.get(), "pipeline", table.pipeline, path);
  write_int_attribute(group_.get(), "dim", dim, path);
  write_string_attribute(group_.get(), "dtype", dtype_name(dtype), path);
  write_string_attribute(group_.get(), "model_name", description.model_name, path);
  write_string_attribute(group_.get(), "model_path", description.model_path, path);
  write_string_attribute(group_.get(), "model_format", description.model_format, path);
  write_string_attribute(group_.get(), "model_fingerprint", description.fingerprint, path);
  write_string_attribute(group_.get(), "precision", description.precision, path);
  write_int_attribute(group_.get(), "normalized", description.normalized, path);
  write_int_attribute(group_.get(), "fence_rows", kFenceRows, path);

  const size_t row_bytes = static_cast<size_t>(dim) * dtype_size(dtype);
  hsize_t chunk_rows = 1;
  while (chunk_rows < static_cast<hsize_t>(kBlockRows) &&
         (chunk_rows * 2) * row_bytes <= kEmbeddingChunkBytes)
    chunk_rows *= 2;
  key_ = create_dataset(group_.get(), "key", H5T_STD_U64LE, 2, 2, kIndexChunkRows, gzip_level, path,
                        group_path);
  row_ = create_dataset(group_.get(), "row", H5T_STD_U64LE, 1, 1, kIndexChunkRows, gzip_level, path,
                        group_path);
  fence_ = create_dataset(group_.get(), "fence", H5T_STD_U64LE, 2, 2, kIndexChunkRows, 0, path,
                          group_path);
  if (dtype == DType::kFloat16) {
    memory_type_ = half_type(path);
    embedding_ = create_dataset(group_.get(), "embedding", memory_type_.get(), 2, dim, chunk_rows,
                                gzip_level, path, group_path);
  } else {
    embedding_ = create_dataset(group_.get(), "embedding", H5T_IEEE_F32LE, 2, dim, chunk_rows,
                                gzip_level, path, group_path);
  }
}

void TableAppender::append(const uint64_t* keys, const uint64_t* rows, const void* embeddings,
                           size_t n) {
  if (n == 0) return;
  // Checked before anything is written: a lookup's binary search relies on the order.
  for (size_t i = 0; i < n; ++i) {
    const ContentKey key{keys[2 * i], keys[2 * i + 1]};
    if (has_last_ && !(last_ < key))
      throw std::logic_error(path_.string() + ": " + group_path_ +
                             ": keys appended out of order or twice (" + to_hex(last_) + ", then " +
                             to_hex(key) + ")");
    last_ = key;
    has_last_ = true;
  }
  for (int64_t r = (rows_ + kFenceRows - 1) / kFenceRows * kFenceRows;
       r < rows_ + static_cast<int64_t>(n); r += kFenceRows) {
    fence_keys_.push_back(keys[2 * (r - rows_)]);
    fence_keys_.push_back(keys[2 * (r - rows_) + 1]);
  }
  const std::string& where = group_path_;
  append_rows(key_.get(), H5T_NATIVE_UINT64, rows_, n, 2, 2, keys, path_, where + "/key");
  append_rows(row_.get(), H5T_NATIVE_UINT64, rows_, n, 1, 1, rows, path_, where + "/row");
  const hid_t mem_type = dtype_ == DType::kFloat16 ? memory_type_.get() : H5T_NATIVE_FLOAT;
  append_rows(embedding_.get(), mem_type, rows_, n, dim_, 2, embeddings, path_,
              where + "/embedding");
  rows_ += static_cast<int64_t>(n);
}

void TableAppender::close() {
  if (!fence_keys_.empty())
    append_rows(fence_.get(), H5T_NATIVE_UINT64, 0, fence_keys_.size() / 2, 2, 2,
                fence_keys_.data(), path_, group_path_ + "/fence");
  fence_keys_.clear();
  key_.close(path_, "closing a key dataset");
  row_.close(path_, "closing a row dataset");
  fence_.close(path_, "closing a fence dataset");
  embedding_.close(path_, "closing an embedding dataset");
  group_.close(path_, "closing a table group");
}

TableSource::TableSource(hid_t file, const std::filesystem::path& path, const TableInfo& info)
    : path_(path), info_(info) {
  auto open = [&](const char* name, hid_t dapl) {
    const std::string p = info.group + "/" + name;
    const htri_t exists = H5Lexists(file, p.c_str(), H5P_DEFAULT);
    if (exists < 0) throw_hdf5_error(path, "looking up " + p);
    if (exists == 0) throw_layout_error(path, "dataset " + p + " missing");
    return H5Dataset(h5_check_id(H5Dopen2(file, p.c_str(), dapl), path, "opening " + p));
  };
  {
    H5PropertyList dapl(h5_check_id(H5Pcreate(H5P_DATASET_ACCESS), path, "H5Pcreate(access)"));
    h5_check(H5Pset_chunk_cache(dapl.get(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, 1.0), path,
             "H5Pset_chunk_cache");
    // Keys are read a whole chunk (1024 keys) at a time, by the merge and by a lookup, which HDF5
    // then reads straight into the caller's buffer: a chunk cache would only add a copy (and
    // memory). Compressed keys keep HDF5's default cache.
    key_ = open("key", dapl.get());
    H5PropertyList key_dcpl(h5_check_id(H5Dget_create_plist(key_.get()), path,
                                        "reading the layout of " + info.group + "/key"));
    if (h5_check(H5Pget_nfilters(key_dcpl.get()), path, "H5Pget_nfilters") > 0)
      key_ = open("key", H5P_DEFAULT);
    row_ = open("row", H5P_DEFAULT);
    embedding_ = open("embedding", dapl.get());
    H5PropertyList dcpl(h5_check_id(H5Dget_create_plist(embedding_.get()), path,
                                    "reading the layout of " + info.group + "/embedding"));
    if (h5_check(H5Pget_nfilters(dcpl.get()), path, "H5Pget_nfilters") > 0) {
      h5_check(H5Pset_chunk_cache(dapl.get(), 1021, kCompressedChunkCacheBytes, 1.0), path,
               "H5Pset_chunk_cache");
      embedding_ = open("embedding", dapl.get());
    }
  }
  const auto key_dims = dims_of(key_.get(), 2, path, info.group + "/key");
  const auto row_dims = dims_of(row_.get(), 1, path, info.group + "/row");
  const auto emb_dims = dims_of(embedding_.get(), 2, path, info.group + "/embedding");
  if (key_dims[1] != 2) throw_layout_error(path, info.group + "/key is not [N,2]");
  if (row_dims[0] != key_dims[0] || emb_dims[0] != key_dims[0])
    throw_layout_error(path, info.group + ": key, row and embedding have different lengths");
  if (emb_dims[1] != static_cast<hsize_t>(info.dim))
    throw_layout_error(path, info.group + "/embedding width differs from attribute dim");
  check_type(key_.get(), H5T_INTEGER, 8, path, info.group + "/key", "64-bit integers");
  check_type(row_.get(), H5T_INTEGER, 8, path, info.group + "/row", "64-bit integers");
  check_type(embedding_.get(), H5T_FLOAT, dtype_size(info.dtype), path, info.group + "/embedding",
             dtype_name(info.dtype));
  rows_ = static_cast<int64_t>(key_dims[0]);
  if (info.dtype == DType::kFloat16) memory_type_ = half_type(path);
  fence_ = open("fence", H5P_DEFAULT);
  const auto fence_dims = dims_of(fence_.get(), 2, path, info.group + "/fence");
  check_type(fence_.get(), H5T_INTEGER, 8, path, info.group + "/fence", "64-bit integers");
  if (fence_dims[1] != 2 ||
      fence_dims[0] != static_cast<hsize_t>((rows_ + kFenceRows - 1) / kFenceRows))
    throw_layout_error(path, info.group + "/fence does not have one key per " +
                                 std::to_string(kFenceRows) + " rows");
  fence_entries_ = static_cast<int64_t>(fence_dims[0]);
}

std::vector<uint64_t> TableSource::read_fence() {
  std::vector<uint64_t> fence(2 * static_cast<size_t>(fence_entries_));
  read(fence_.get(), H5T_NATIVE_UINT64, 0, static_cast<size_t>(fence_entries_), 2, 2, fence.data(),
       "fence");
  for (size_t i = 1; i < static_cast<size_t>(fence_entries_); ++i)
    if (!(ContentKey{fence[2 * i - 2], fence[2 * i - 1]} <
          ContentKey{fence[2 * i], fence[2 * i + 1]}))
      fail_layout("fence keys not increasing at " + std::to_string(i));
  return fence;
}

void TableSource::fail_layout(const std::string& what) const {
  throw_layout_error(path_, info_.group + ": " + what);
}

void TableSource::read(hid_t dataset, hid_t mem_type, int64_t start, size_t n, int rank,
                       size_t cols, void* out, const char* name) {
  if (n == 0) return;
  const hsize_t offset[2] = {static_cast<hsize_t>(start), 0};
  const hsize_t count[2] = {n, cols};
  const std::string where = info_.group + "/" + name;
  H5Dataspace file_space(h5_check_id(H5Dget_space(dataset), path_, "H5Dget_space " + where));
  h5_check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset, nullptr, count, nullptr),
           path_, "selecting rows of " + where);
  H5Dataspace mem_space(h5_check_id(H5Screate_simple(rank, count, nullptr), path_, "H5Screate"));
  if (H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    throw_hdf5_error(path_, "reading " + where,
                     "The file is truncated or corrupt; delete it and the next run rebuilds it.");
  }
}

void TableSource::read_keys(int64_t start, size_t n, uint64_t* keys) {
  read(key_.get(), H5T_NATIVE_UINT64, start, n, 2, 2, keys, "key");
}

void TableSource::read_rows(int64_t start, size_t n, uint64_t* rows) {
  read(row_.get(), H5T_NATIVE_UINT64, start, n, 1, 1, rows, "row");
}

void TableSource::read_embeddings(int64_t start, size_t n, void* out) {
  const hid_t mem_type = info_.dtype == DType::kFloat16 ? memory_type_.get() : H5T_NATIVE_FLOAT;
  read(embedding_.get(), mem_type, start, n, 2, info_.dim, out, "embedding");
}

}  // namespace clipshard::cache_format
