#include "shard/tar_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "shard/manifest_row.h"

namespace clipshard {

namespace {

constexpr int64_t kBlock = 512;
// Pax records and GNU long names larger than this are treated as a corrupt header: real ones are
// a few hundred bytes, and the limit keeps a hostile size field from allocating gigabytes.
constexpr int64_t kMaxExtendedHeader = int64_t{1} << 20;

int64_t round_up(int64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// Numeric header field: octal digits (space/NUL padded) or, when the first byte has its high bit
// set, GNU base-256 (big-endian two's complement) — how tar writes sizes of 8 GiB and more.
std::optional<int64_t> parse_number(const char* field, size_t width) {
  const auto* u = reinterpret_cast<const unsigned char*>(field);
  if (u[0] & 0x80) {
    if (u[0] & 0x40) return std::nullopt;  // negative
    int64_t v = u[0] & 0x3F;
    for (size_t i = 1; i < width; ++i) {
      if (v > (INT64_MAX >> 8)) return std::nullopt;
      v = (v << 8) | u[i];
    }
    return v;
  }
  size_t i = 0;
  while (i < width && field[i] == ' ') ++i;
  int64_t v = 0;
  bool any = false;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v > (INT64_MAX >> 3)) return std::nullopt;
    v = v * 8 + (field[i] - '0');
    any = true;
  }
  for (; i < width; ++i)
    if (field[i] != ' ' && field[i] != '\0') return std::nullopt;
  if (!any) return std::nullopt;
  return v;
}

bool checksum_ok(const char* block) {
  const auto stored = parse_number(block + 148, 8);
  if (!stored) return false;
  int64_t unsigned_sum = 0, signed_sum = 0;  // old tars summed signed chars
  for (int i = 0; i < kBlock; ++i) {
    const char c = (i >= 148 && i < 156) ? ' ' : block[i];
    unsigned_sum += static_cast<unsigned char>(c);
    signed_sum += static_cast<signed char>(c);
  }
  return *stored == unsigned_sum || *stored == signed_sum;
}

bool all_zero(const char* block) {
  return std::all_of(block, block + kBlock, [](char c) { return c == 0; });
}

std::string field_string(const char* field, size_t width) {
  return std::string(field, strnlen(field, width));
}

// The member name of a header whose checksum is bad, when it is plausible text (to attach the
// damage to the right sample); "" otherwise.
std::string legible_name(const char* block, int64_t got) {
  const std::string name = field_string(block, static_cast<size_t>(std::min<int64_t>(got, 100)));
  if (name.empty() || !is_valid_utf8(name)) return "";
  for (const char c : name)
    if (static_cast<unsigned char>(c) < 0x20) return "";
  return name;
}

}  // namespace

void split_member_name(const std::string& name, std::string* key, std::string* extension) {
  const size_t slash = name.rfind('/');
  const size_t file_start = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = name.find('.', file_start);
  if (dot == std::string::npos) {
    *key = name;
    extension->clear();
  } else {
    *key = name.substr(0, dot);
    *extension = name.substr(dot + 1);
  }
}

// One tar entry: a member with its extended headers, or a damaged stretch of the file.
struct TarEntry {
  enum Kind { kFile, kDirectory, kOther, kCorrupt, kTruncated, kEnd } kind = kEnd;
  int64_t begin = 0;  // first header block (extended headers included)
  std::string name, key, extension;
  std::string type_name;  // for kOther: "symlink", "hard link", ...
  int64_t data_offset = 0, size = 0;
  std::string detail;  // what is wrong, for kCorrupt / kTruncated
};

struct TarSampleScanner::State {
  std::filesystem::path path;
  int fd = -1;
  int64_t file_size = 0;
  int64_t pos = 0;
  int64_t next_index = 1;
  bool finished = false;
  std::optional<TarEntry> lookahead;
  XXH3_state_t* hash = nullptr;

  ~State() {
    if (fd >= 0) ::close(fd);
    if (hash) XXH3_freeState(hash);
  }

  // Reads up to `n` bytes at `offset`; returns the count (short only at end of file).
  int64_t read_at(int64_t offset, char* out, int64_t n) {
    int64_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd, out + done, static_cast<size_t>(n - done), offset + done);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0)
        throw std::runtime_error("read error in tar " + path.string() + ": " +
                                 std::strerror(errno));
      if (r == 0) break;
      done += r;
    }
    return done;
  }

  // Offset of the next block at or after `from` that holds a valid header, or the file size.
  int64_t resync(int64_t from) {
    std::vector<char> buffer(size_t{1} << 16);
    for (int64_t chunk = from; chunk < file_size;) {
      const int64_t got = read_at(chunk, buffer.data(), static_cast<int64_t>(buffer.size()));
      for (int64_t b = 0; b + kBlock <= got; b += kBlock)
        if (!all_zero(buffer.data() + b) && checksum_ok(buffer.data() + b)) return chunk + b;
      if (got < static_cast<int64_t>(buffer.size())) break;
      chunk += got;
    }
    return file_size;
  }

  // A member that cannot be read: a corrupt header resumes at the next valid header, a truncated
  // tar ends the scan.
  TarEntry unreadable(TarEntry::Kind kind, int64_t begin, const std::string& name,
                      const std::string& detail) {
    TarEntry e;
    e.kind = kind;
    e.begin = begin;
    e.name = name;
    split_member_name(name, &e.key, &e.extension);
    e.detail = detail;
    pos = kind == TarEntry::kCorrupt ? resync(begin + kBlock) : file_size;
    return e;
  }
  TarEntry corrupt(int64_t begin, const std::string& name, const std::string& detail) {
    return unreadable(TarEntry::kCorrupt, begin, name, detail);
  }
  TarEntry truncated(int64_t begin, const std::string& name, const std::string& detail) {
    return unreadable(TarEntry::kTruncated, begin, name, detail);
  }

  TarEntry read_entry() {
    const int64_t begin = pos;
    std::string long_name, pax_path;
    std::optional<int64_t> pax_size;
    char block[kBlock];
    for (;;) {
      const int64_t got = read_at(pos, block, kBlock);
      if (got == 0) return TarEntry{};  // end of file without the zero blocks: tolerated
      if (got < kBlock) {
        if (std::all_of(block, block + got, [](char c) { return c == 0; })) return TarEntry{};
        return truncated(begin, legible_name(block, got),
                         "tar ends inside a header at offset " + std::to_string(pos));
      }
      if (all_zero(block)) return TarEntry{};  // end-of-archive marker
      if (!checksum_ok(block))
        return corrupt(begin, legible_name(block, got),
                       "bad header checksum at offset " + std::to_string(pos));
      XXH3_64bits_update(hash, block, kBlock);
      const auto header_size = parse_number(block + 124, 12);
      if (!header_size)
        return corrupt(begin, legible_name(block, got),
                       "bad size field in the header at offset " + std::to_string(pos));
      const char type = block[156];
      const int64_t data = pos + kBlock;
      if (type == 'L' || type == 'x' || type == 'K' || type == 'g') {
        if (*header_size > kMaxExtendedHeader)
          return corrupt(begin, legible_name(block, got),
                         "extended header of " + std::to_string(*header_size) + " bytes");
        if (data + *header_size > file_size)
          return truncated(begin, legible_name(block, got),
                           "tar ends inside an extended header at offset " + std::to_string(pos));
        std::string payload(static_cast<size_t>(*header_size), '\0');
        read_at(data, payload.data(), *header_size);
        XXH3_64bits_update(hash, payload.data(), payload.size());
        pos = std::min(data + round_up(*header_size), file_size);  // padding may be cut off
        if (type == 'L') {
          long_name = payload.substr(0, payload.find('\0'));
        } else if (type == 'x') {
          // Records "LEN key=value\n"; only path and size matter for reading samples.
          size_t at = 0;
          while (at < payload.size()) {
            const size_t space = payload.find(' ', at);
            if (space == std::string::npos) break;
            int64_t n = 0;  // the record's length, decimal, counting itself and the newline
            for (size_t i = at; i < space && std::isdigit(static_cast<unsigned char>(payload[i]));
                 ++i)
              n = n * 10 + (payload[i] - '0');
            if (n <= 0 || at + static_cast<size_t>(n) > payload.size())
              return corrupt(begin, "", "malformed pax header at offset " + std::to_string(begin));
            const std::string record = payload.substr(space + 1, at + n - space - 2);
            const size_t eq = record.find('=');
            if (eq != std::string::npos) {
              const std::string k = record.substr(0, eq), v = record.substr(eq + 1);
              if (k == "path") pax_path = v;
              if (k == "size") {
                char* endp = nullptr;
                const long long s = std::strtoll(v.c_str(), &endp, 10);
                if (v.empty() || *endp != '\0' || s < 0)
                  return corrupt(begin, pax_path,
                                 "bad pax size at offset " + std::to_string(begin));
                pax_size = s;
              }
            }
            at += static_cast<size_t>(n);
          }
        }
        continue;  // 'K' (long link target) and 'g' (global header) are skipped
      }
      TarEntry e;
      e.begin = begin;
      if (!pax_path.empty()) {
        e.name = pax_path;
      } else if (!long_name.empty()) {
        e.name = long_name;
      } else {
        e.name = field_string(block, 100);
        if (std::memcmp(block + 257, "ustar\0", 6) == 0) {  // POSIX: prefix + '/' + name
          const std::string prefix = field_string(block + 345, 155);
          if (!prefix.empty()) e.name = prefix + "/" + e.name;
        }
      }
      split_member_name(e.name, &e.key, &e.extension);
      e.size = pax_size.value_or(*header_size);
      e.data_offset = data;
      switch (type) {
        case '0':
        case '\0':
        case '7':
          e.kind = TarEntry::kFile;
          break;
        case '5':
          e.kind = TarEntry::kDirectory;
          break;
        case '1':
          e.kind = TarEntry::kOther, e.type_name = "hard link";
          break;
        case '2':
          e.kind = TarEntry::kOther, e.type_name = "symlink";
          break;
        default:
          e.kind = TarEntry::kOther, e.type_name = std::string("type '") + type + "' member";
      }
      // Links and directories carry no data whatever their size field says.
      const int64_t stored =
          (e.kind == TarEntry::kFile || e.kind == TarEntry::kOther) && type != '1' && type != '2'
              ? e.size
              : 0;
      if (data + stored > file_size)
        return truncated(begin, e.name,
                         "tar ends inside member " + e.name + " (" + std::to_string(e.size) +
                             " bytes at offset " + std::to_string(data) + ")");
      pos = std::min(data + round_up(stored), file_size);  // padding may be cut off
      return e;
    }
  }

  TarEntry take() {
    if (lookahead) {
      TarEntry e = std::move(*lookahead);
      lookahead.reset();
      return e;
    }
    for (;;) {
      TarEntry e = read_entry();
      if (e.kind != TarEntry::kDirectory) return e;
    }
  }
};

TarSampleScanner::TarSampleScanner(const std::filesystem::path& path, int64_t begin,
                                   int64_t first_index)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.path = path;
  s.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (s.fd < 0)
    throw std::runtime_error("cannot open tar " + path.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(s.fd, &st) != 0)
    throw std::runtime_error("cannot stat tar " + path.string() + ": " + std::strerror(errno));
  s.file_size = st.st_size;
  s.pos = begin;
  s.next_index = first_index;
  s.hash = XXH3_createState();
  XXH3_64bits_reset(s.hash);
}

TarSampleScanner::~TarSampleScanner() = default;

int64_t TarSampleScanner::file_size() const { return state_->file_size; }

uint64_t TarSampleScanner::header_hash() const { return XXH3_64bits_digest(state_->hash); }

bool TarSampleScanner::next(TarSample* sample) {
  State& s = *state_;
  if (s.finished) return false;
  TarEntry e = s.take();
  if (e.kind == TarEntry::kEnd) {
    s.finished = true;
    return false;
  }
  *sample = TarSample{};
  sample->index = s.next_index++;
  sample->key = e.key;
  sample->begin = e.begin;
  // Adds one entry of this sample's key; false when the scan cannot continue past it.
  auto absorb = [&](TarEntry& entry) {
    switch (entry.kind) {
      case TarEntry::kFile:
        sample->members.push_back(
            {entry.name, entry.extension, entry.data_offset, entry.size, entry.begin});
        return true;
      case TarEntry::kOther:
        sample->skipped.push_back(entry.extension + " (" + entry.type_name + ")");
        return true;
      case TarEntry::kCorrupt:
        if (sample->problem.ok())
          sample->problem = RowStatus::Error(RowError::kCorruptTar, entry.detail);
        return true;
      case TarEntry::kTruncated:
        if (sample->problem.ok() || sample->problem.code != RowError::kTruncatedTar)
          sample->problem = RowStatus::Error(RowError::kTruncatedTar, entry.detail);
        return false;
      default:
        return true;
    }
  };
  bool more = absorb(e);
  while (more) {
    TarEntry n = s.take();
    if (n.kind == TarEntry::kEnd) {
      s.finished = true;
      break;
    }
    if (n.key != sample->key) {
      sample->end = n.begin;
      s.lookahead = std::move(n);
      return true;
    }
    more = absorb(n);
  }
  if (!more) s.finished = true;
  sample->end = s.pos;
  return true;
}

RowStatus read_tar_member(const std::filesystem::path& tar, int64_t offset, int64_t size,
                          int64_t max_bytes, std::vector<uint8_t>* bytes) {
  bytes->clear();
  if (size == 0) return RowStatus::Error(RowError::kEmptyFile, "member is empty (0 bytes)");
  if (size > max_bytes)
    return RowStatus::Error(RowError::kUnreadableFile, "member is larger than max_file_bytes (" +
                                                           std::to_string(size) + " bytes)");
  const int fd = ::open(tar.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return RowStatus::Error(RowError::kUnreadableFile,
                            "cannot open tar " + tar.string() + ": " + std::strerror(errno));
  bytes->resize(static_cast<size_t>(size));
  int64_t done = 0;
  RowStatus status;
  while (done < size) {
    const ssize_t n =
        ::pread(fd, bytes->data() + done, static_cast<size_t>(size - done), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = RowStatus::Error(RowError::kUnreadableFile,
                                "read error in tar " + tar.string() + ": " + std::strerror(errno));
      break;
    }
    if (n == 0) {
      status = RowStatus::Error(RowError::kTruncatedTar,
                                "tar " + tar.string() + " ends inside the member");
      break;
    }
    done += n;
  }
  ::close(fd);
  if (!status.ok()) bytes->clear();
  return status;
}

}  // namespace clipshard
