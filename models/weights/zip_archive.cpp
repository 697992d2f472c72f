#include "models/weights/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kEocd64Sig = 0x06064b50;
constexpr uint32_t kEocd64LocatorSig = 0x07064b50;
constexpr size_t kEocdSize = 22;
constexpr size_t kEocd64Size = 56;
constexpr size_t kLocatorSize = 20;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kPaddingExtraId = 0x4246;  // "FB", the id PyTorch's writer uses for padding
constexpr uint32_t k32 = 0xffffffffu;
constexpr uint16_t k16 = 0xffff;
// Deflate cannot compress better than about 1032:1; a larger claimed ratio is a lie (or a bomb).
constexpr uint64_t kMaxDeflateRatio = 1100;

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const uint8_t* p) {
  return static_cast<uint64_t>(le32(p)) | (static_cast<uint64_t>(le32(p + 4)) << 32);
}

uint32_t crc32_of(const uint8_t* p, size_t n) {
  return static_cast<uint32_t>(::crc32_z(::crc32_z(0, nullptr, 0), p, n));
}

}  // namespace

void ZipReader::fail(const std::string& what) const {
  throw CheckpointError("zip archive " + name_ + ": " + what);
}

ZipReader::ZipReader(const uint8_t* data, size_t size, std::string archive_name)
    : data_(data), size_(size), name_(std::move(archive_name)) {
  if (size_ < kEocdSize) fail("too short to be a zip archive (" + std::to_string(size) + " bytes)");
  // End of central directory: the last record whose comment reaches exactly to the end of file
  // (or, leniently, fits in it).
  size_t eocd = std::string::npos;
  const size_t lowest = size_ > kEocdSize + 0xffff ? size_ - kEocdSize - 0xffff : 0;
  for (size_t pos = size_ - kEocdSize + 1; pos-- > lowest;) {
    if (le32(data_ + pos) == kEocdSig && pos + kEocdSize + le16(data_ + pos + 20) <= size_) {
      eocd = pos;
      break;
    }
  }
  if (eocd == std::string::npos) {
    fail("no end-of-central-directory record (the file is truncated or not a zip archive)");
  }
  const uint8_t* e = data_ + eocd;
  uint64_t total = le16(e + 10);
  uint64_t cd_size = le32(e + 12);
  uint64_t cd_offset = le32(e + 16);
  uint64_t cd_limit = eocd;  // the central directory must end before this
  const bool has_locator =
      eocd >= kLocatorSize && le32(data_ + eocd - kLocatorSize) == kEocd64LocatorSig;
  if (has_locator) {
    const uint64_t eocd64 = le64(data_ + eocd - kLocatorSize + 8);
    if (eocd64 > eocd - kLocatorSize || eocd - kLocatorSize - eocd64 < kEocd64Size) {
      fail("zip64 end-of-central-directory locator points outside the file");
    }
    const uint8_t* z = data_ + eocd64;
    if (le32(z) != kEocd64Sig) fail("zip64 end-of-central-directory record is corrupted");
    total = le64(z + 32);
    cd_size = le64(z + 40);
    cd_offset = le64(z + 48);
    cd_limit = eocd64;
  } else if (total == k16 || cd_size == k32 || cd_offset == k32) {
    fail("zip64 archive without its zip64 end-of-central-directory locator (truncated?)");
  }
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) {
    fail("central directory (offset " + std::to_string(cd_offset) + ", " + std::to_string(cd_size) +
         " bytes) lies outside the file (truncated or corrupted)");
  }
  if (total > cd_size / kCentralHeaderSize) {
    fail("central directory claims " + std::to_string(total) + " entries in " +
         std::to_string(cd_size) + " bytes");
  }
  entries_.reserve(total);
  const uint8_t* p = data_ + cd_offset;
  const uint8_t* end = p + cd_size;
  for (uint64_t i = 0; i < total; ++i) {
    if (end - p < static_cast<std::ptrdiff_t>(kCentralHeaderSize) || le32(p) != kCentralHeaderSig) {
      fail("central directory entry " + std::to_string(i) + " is corrupted");
    }
    ZipEntry entry;
    entry.flags = le16(p + 8);
    entry.method = le16(p + 10);
    entry.crc32 = le32(p + 16);
    entry.compressed_size = le32(p + 20);
    entry.size = le32(p + 24);
    const size_t name_len = le16(p + 28);
    const size_t extra_len = le16(p + 30);
    const size_t comment_len = le16(p + 32);
    entry.local_header_offset = le32(p + 42);
    if (static_cast<size_t>(end - p) < kCentralHeaderSize + name_len + extra_len + comment_len) {
      fail("central directory entry " + std::to_string(i) + " runs past the directory");
    }
    entry.name.assign(reinterpret_cast<const char*>(p + kCentralHeaderSize), name_len);
    const uint8_t* extra = p + kCentralHeaderSize + name_len;
    const uint8_t* extra_end = extra + extra_len;
    while (extra_end - extra >= 4) {
      const uint16_t id = le16(extra);
      const size_t len = le16(extra + 2);
      if (static_cast<size_t>(extra_end - extra - 4) < len) {
        fail("entry '" + entry.name + "' has a corrupted extra field");
      }
      if (id == kZip64ExtraId) {
        const uint8_t* f = extra + 4;
        const uint8_t* f_end = f + len;
        auto next = [&](uint64_t* field) {
          if (*field != k32) return;
          if (f_end - f < 8) fail("entry '" + entry.name + "' has a truncated zip64 extra field");
          *field = le64(f);
          f += 8;
        };
        next(&entry.size);
        next(&entry.compressed_size);
        next(&entry.local_header_offset);
      }
      extra += 4 + len;
    }
    p += kCentralHeaderSize + name_len + extra_len + comment_len;
    index_.emplace(entry.name, entries_.size());
    entries_.push_back(std::move(entry));
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

ZipReader::Bytes ZipReader::read(const ZipEntry& entry, std::vector<uint8_t>* scratch,
                                 bool verify_crc) const {
  const std::string what = "entry '" + entry.name + "'";
  if (entry.flags & 0x1) fail(what + " is encrypted");
  const uint64_t off = entry.local_header_offset;
  if (off > size_ || size_ - off < kLocalHeaderSize || le32(data_ + off) != kLocalHeaderSig) {
    fail(what + " has no valid local header at offset " + std::to_string(off) +
         " (truncated or corrupted)");
  }
  const uint64_t start = off + kLocalHeaderSize + le16(data_ + off + 26) + le16(data_ + off + 28);
  if (start > size_ || entry.compressed_size > size_ - start) {
    fail(what + " (" + std::to_string(entry.compressed_size) + " bytes at offset " +
         std::to_string(start) + ") runs past the end of the file (truncated)");
  }
  const uint8_t* src = data_ + start;
  Bytes out{};
  if (entry.method == 0) {
    if (entry.compressed_size != entry.size) fail(what + " is stored but its sizes differ");
    out = {src, static_cast<size_t>(entry.size)};
  } else if (entry.method == 8) {
    if (entry.size / kMaxDeflateRatio > entry.compressed_size + 1) {
      fail(what + " claims an impossible compression ratio");
    }
    scratch->assign(entry.size, 0);
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail("zlib inflateInit failed");
    zs.next_in = const_cast<Bytef*>(src);
    zs.next_out = scratch->data();
    uint64_t in_left = entry.compressed_size, out_left = entry.size;
    int rc = Z_OK;
    while (rc == Z_OK) {
      const uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      const uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
      zs.avail_in = in_chunk;
      zs.avail_out = out_chunk;
      rc = inflate(&zs, Z_NO_FLUSH);
      in_left -= in_chunk - zs.avail_in;
      out_left -= out_chunk - zs.avail_out;
      if (rc == Z_OK && zs.avail_in == in_chunk && zs.avail_out == out_chunk) rc = Z_BUF_ERROR;
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || out_left != 0) fail(what + " has corrupted deflate data");
    out = {scratch->data(), scratch->size()};
  } else {
    fail(what + " uses unsupported compression method " + std::to_string(entry.method));
  }
  if (verify_crc && crc32_of(out.data, out.size) != entry.crc32) fail(what + " fails its CRC-32");
  return out;
}

ZipWriter::ZipWriter(const std::filesystem::path& file, bool force_zip64)
    : file_(file), out_(file, std::ios::binary | std::ios::trunc), force_zip64_(force_zip64) {
  check();
}

void ZipWriter::check() {
  if (!out_) {
    throw CheckpointError("cannot write " + file_.string() +
                          " (check that the directory exists and has free space)");
  }
}

void ZipWriter::put(const void* p, size_t n) {
  out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  pos_ += n;
}

namespace {
struct Buf {
  std::vector<uint8_t> b;
  void u16(uint64_t v) {
    for (int i = 0; i < 2; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u32(uint64_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void str(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
};
}  // namespace

void ZipWriter::add(const std::string& name, const void* data, size_t size, size_t alignment) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  const bool zip64 = force_zip64_ || size >= k32 || pos_ >= k32;
  Buf h;
  h.u32(kLocalHeaderSig);
  h.u16(zip64 ? 45 : 20);  // version needed
  h.u16(0);                // flags
  h.u16(0);                // stored
  h.u16(0);                // time
  h.u16(0x21);             // date (1980-01-01)
  const uint32_t crc = crc32_of(bytes, size);
  h.u32(crc);
  h.u32(zip64 ? k32 : size);
  h.u32(zip64 ? k32 : size);
  h.u16(name.size());
  size_t extra_len = zip64 ? 20 : 0;
  const size_t unpadded = pos_ + kLocalHeaderSize + name.size() + extra_len;
  size_t pad = alignment > 1 ? (alignment - unpadded % alignment) % alignment : 0;
  if (pad != 0 && pad < 4) pad += alignment;  // room for the padding field's own header
  extra_len += pad;
  h.u16(extra_len);
  h.str(name);
  if (zip64) {
    h.u16(kZip64ExtraId);
    h.u16(16);
    h.u64(size);
    h.u64(size);
  }
  if (pad != 0) {
    h.u16(kPaddingExtraId);
    h.u16(pad - 4);
    h.b.insert(h.b.end(), pad - 4, 'Z');
  }
  written_.push_back({name, crc, size, pos_});
  put(h.b.data(), h.b.size());
  put(bytes, size);
  check();
}

void ZipWriter::finish() {
  const uint64_t cd_offset = pos_;
  for (const auto& w : written_) {
    const bool big_size = force_zip64_ || w.size >= k32;
    const bool big_offset = force_zip64_ || w.offset >= k32;
    Buf z;  // zip64 extra: only the fields whose 32-bit slot is 0xffffffff, in this order
    if (big_size) z.u64(w.size), z.u64(w.size);
    if (big_offset) z.u64(w.offset);
    Buf c;
    c.u32(kCentralHeaderSig);
    c.u16(big_size || big_offset ? 45 : 20);  // version made by
    c.u16(big_size || big_offset ? 45 : 20);  // version needed
    c.u16(0);
    c.u16(0);
    c.u16(0);
    c.u16(0x21);
    c.u32(w.crc32);
    c.u32(big_size ? k32 : w.size);
    c.u32(big_size ? k32 : w.size);
    c.u16(w.name.size());
    c.u16(z.b.empty() ? 0 : z.b.size() + 4);
    c.u16(0);  // comment
    c.u16(0);  // disk
    c.u16(0);  // internal attributes
    c.u32(0);  // external attributes
    c.u32(big_offset ? k32 : w.offset);
    c.str(w.name);
    if (!z.b.empty()) {
      c.u16(kZip64ExtraId);
      c.u16(z.b.size());
      c.b.insert(c.b.end(), z.b.begin(), z.b.end());
    }
    put(c.b.data(), c.b.size());
  }
  const uint64_t cd_size = pos_ - cd_offset;
  const uint64_t n = written_.size();
  const bool zip64 = force_zip64_ || n >= k16 || cd_offset >= k32 || cd_size >= k32;
  Buf e;
  if (zip64) {
    const uint64_t eocd64 = pos_;
    e.u32(kEocd64Sig);
    e.u64(kEocd64Size - 12);
    e.u16(45);
    e.u16(45);
    e.u32(0);
    e.u32(0);
    e.u64(n);
    e.u64(n);
    e.u64(cd_size);
    e.u64(cd_offset);
    e.u32(kEocd64LocatorSig);
    e.u32(0);
    e.u64(eocd64);
    e.u32(1);
  }
  e.u32(kEocdSig);
  e.u16(0);
  e.u16(0);
  e.u16(zip64 ? k16 : n);
  e.u16(zip64 ? k16 : n);
  e.u32(zip64 ? k32 : cd_size);
  e.u32(zip64 ? k32 : cd_offset);
  e.u16(0);
  put(e.b.data(), e.b.size());
  out_.close();
  check();
}

}  // namespace clipshard
