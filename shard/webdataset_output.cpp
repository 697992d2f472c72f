#include "shard/webdataset_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <stdexcept>

#include "shard/atomic_file.h"
#include "shard/manifest_row.h"
#include "shard/tar_reader.h"

namespace clipshard {

namespace {

constexpr int64_t kBlock = 512;

int64_t round_up(int64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

std::string read_range(int fd, const std::filesystem::path& path, int64_t offset, int64_t size) {
  std::string bytes(static_cast<size_t>(size), '\0');
  int64_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(fd, bytes.data() + done, static_cast<size_t>(size - done), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("cannot read " + path.string() + " while copying samples");
    done += n;
  }
  return bytes;
}

// Sets a header's size field (octal) and recomputes its checksum.
void set_size_and_checksum(std::string* block, int64_t size) {
  char field[13];
  std::snprintf(field, sizeof field, "%011llo", static_cast<unsigned long long>(size));
  std::memcpy(block->data() + 124, field, 12);
  std::memset(block->data() + 148, ' ', 8);
  unsigned sum = 0;
  for (const char c : *block) sum += static_cast<unsigned char>(c);
  char checksum[8];
  std::snprintf(checksum, sizeof checksum, "%06o", sum);
  std::memcpy(block->data() + 148, checksum, 7);  // six digits, NUL, the space stays
}

// A GNU long-name header ('L') for `name`, followed by its data blocks.
std::string long_name_header(const std::string& name, const std::string& like) {
  std::string block = like;
  std::memset(block.data(), 0, 100);
  std::memcpy(block.data(), "././@LongLink", 13);
  block[156] = 'L';
  set_size_and_checksum(&block, static_cast<int64_t>(name.size() + 1));
  std::string data = name;
  data.resize(static_cast<size_t>(round_up(static_cast<int64_t>(name.size() + 1))), '\0');
  return block + data;
}

// The key a kept row claims, with the data offset of one of its image members when it has one
// (disambiguates a key that appears twice in a tar).
struct Claim {
  std::string url, key;
  std::optional<int64_t> offset;
};

std::optional<Claim> claim_of(const std::string& line) {
  const ParsedLine parsed = parse_manifest_line(line);
  if (parsed.kind != LineKind::kRow) return std::nullopt;
  const Json& row = parsed.object;
  const auto url = row.find("__url__");
  const auto key = row.find("__key__");
  if (url == row.end() || key == row.end() || !url->is_string() || !key->is_string())
    return std::nullopt;
  Claim c{url->get<std::string>(), key->get<std::string>(), std::nullopt};
  for (const auto& [k, v] : row.items())
    if (v.is_object() && v.contains("offset") && v["offset"].is_number_integer())
      c.offset = v["offset"].get<int64_t>();
  return c;
}

}  // namespace

int64_t write_webdataset_outputs(const ShardPlan& plan, const std::filesystem::path& output_jsonl,
                                 const std::filesystem::path& out_dir,
                                 const std::vector<std::string>& score_keys) {
  std::filesystem::create_directories(out_dir);
  std::ifstream rows(output_jsonl, std::ios::binary);
  if (!rows) throw std::runtime_error("cannot read " + output_jsonl.string());
  std::set<std::string> names;
  std::set<std::string> later_urls;  // tars not finished yet (rows of other urls: manifests')
  for (const auto& m : plan.manifests)
    if (m.kind == InputKind::kTar) later_urls.insert(m.url);
  std::string line;
  std::optional<Claim> pending;  // the next row of a tar, read ahead
  std::string pending_line;
  auto advance = [&] {
    pending.reset();
    while (std::getline(rows, line)) {
      pending = claim_of(line);
      if (pending && later_urls.count(pending->url)) {
        pending_line = line;
        return;
      }
      pending.reset();  // a manifest's row
    }
  };
  advance();
  int64_t written = 0;
  for (const auto& m : plan.manifests) {
    if (m.kind != InputKind::kTar) continue;
    const std::string name = std::filesystem::path(m.path).filename().string();
    if (!names.insert(name).second)
      throw std::runtime_error("webdataset_output: two input tars are named " + name +
                               "; their filtered copies would overwrite each other");
    AtomicFile out(out_dir / name);
    const int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open tar " + m.path);
    try {
      TarSampleScanner scanner(m.path);
      TarSample sample;
      while (pending && pending->url == m.url && scanner.next(&sample)) {
        if (sample.key != pending->key) continue;
        if (pending->offset) {
          bool has = false;
          for (const auto& member : sample.members) has |= member.data_offset == *pending->offset;
          if (!has) continue;  // an earlier sample with the same key
        }
        const Json row = parse_manifest_line(pending_line).object;
        Json scores = Json::object();
        for (const auto& k : score_keys)
          if (row.contains(k)) scores[k] = row[k];
        const TarMember* json = nullptr;
        for (const auto& member : sample.members)
          if (member.extension == "json") json = &member;
        if (json) {
          // Members before the .json, its extended headers, its header with the new size, the new
          // JSON, the rest of the sample.
          out.write(read_range(fd, m.path, sample.begin, json->header_offset - sample.begin));
          const int64_t header_block = json->data_offset - kBlock;
          out.write(
              read_range(fd, m.path, json->header_offset, header_block - json->header_offset));
          Json meta = Json::object();
          const ParsedLine parsed =
              parse_manifest_line(read_range(fd, m.path, json->data_offset, json->size));
          if (parsed.kind == LineKind::kRow) meta = parsed.object;
          for (const auto& [k, v] : scores.items()) meta[k] = v;
          std::string text = meta.dump(-1, ' ', false, Json::error_handler_t::replace);
          std::string header = read_range(fd, m.path, header_block, kBlock);
          set_size_and_checksum(&header, static_cast<int64_t>(text.size()));
          out.write(header);
          text.resize(static_cast<size_t>(round_up(static_cast<int64_t>(text.size()))), '\0');
          out.write(text);
          const int64_t after = json->data_offset + round_up(json->size);
          out.write(read_range(fd, m.path, after, sample.end - after));
        } else {
          out.write(read_range(fd, m.path, sample.begin, sample.end - sample.begin));
          if (!sample.members.empty()) {
            // A new .json member, its header modelled on the sample's first member's (mode,
            // owner, mtime), so that the bytes depend only on the input.
            std::string header =
                read_range(fd, m.path, sample.members.front().data_offset - kBlock, kBlock);
            const std::string json_name = sample.key + ".json";
            std::memset(header.data(), 0, 100);
            std::memset(header.data() + 345, 0, 155);  // ustar prefix
            if (json_name.size() <= 100) {
              std::memcpy(header.data(), json_name.data(), json_name.size());
            } else {
              out.write(long_name_header(json_name, header));
              std::memcpy(header.data(), json_name.data(), 100);
            }
            header[156] = '0';
            std::string text = scores.dump(-1, ' ', false, Json::error_handler_t::replace);
            set_size_and_checksum(&header, static_cast<int64_t>(text.size()));
            out.write(header);
            text.resize(static_cast<size_t>(round_up(static_cast<int64_t>(text.size()))), '\0');
            out.write(text);
          }
        }
        ++written;
        advance();
      }
      if (pending && pending->url == m.url)
        throw std::runtime_error("webdataset_output: " + output_jsonl.string() +
                                 " has a row for sample " + pending->key + " of " + m.path +
                                 " that the tar does not have (changed during the run?)");
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    out.write(std::string(2 * kBlock, '\0'));  // end-of-archive marker
    out.commit();
    later_urls.erase(m.url);
  }
  return written;
}

}  // namespace clipshard
