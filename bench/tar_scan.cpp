// Planning scan and streaming read of WebDataset tars (bench/README.md):
//   tar_scan TAR... [--lines-per-shard N] [--read]
// Prints the header-only planning scan's time (what every run start costs per tar), and with
// --read the time to turn every sample into a row and pread every image member (the bytes a worker
// reads), with the process's peak RSS: streaming a tar must not grow memory with its size.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "shard/row_source.h"
#include "shard/shard_plan.h"
#include "shard/tar_reader.h"

int main(int argc, char** argv) {
  using namespace clipshard;
  using Clock = std::chrono::steady_clock;
  std::vector<std::filesystem::path> tars;
  int64_t lines_per_shard = 512;
  bool read = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--lines-per-shard") == 0 && i + 1 < argc)
      lines_per_shard = std::stoll(argv[++i]);
    else if (std::strcmp(argv[i], "--read") == 0)
      read = true;
    else
      tars.emplace_back(argv[i]);
  }
  if (tars.empty()) {
    std::fprintf(stderr, "usage: tar_scan TAR... [--lines-per-shard N] [--read]\n");
    return 2;
  }
  auto t0 = Clock::now();
  const ShardPlan plan = plan_shards(tars, lines_per_shard);
  const double scan = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t bytes = 0;
  for (const auto& m : plan.manifests) bytes += m.size;
  std::printf("plan: %lld samples, %zu shards, %.1f MB of tar, %.3f s (%.0f samples/s)\n",
              static_cast<long long>(plan.total_lines()), plan.shards.size(), bytes / 1e6, scan,
              plan.total_lines() / scan);
  if (read) {
    t0 = Clock::now();
    int64_t rows = 0, image_bytes = 0;
    std::vector<uint8_t> data;
    for (const auto& m : plan.manifests) {
      RowSource source(m.kind, m.path, m.url, 0, 1);
      SourceRow row;
      while (source.next(&row)) {
        ++rows;
        if (row.parsed.kind != LineKind::kRow) continue;
        for (const auto& [key, value] : row.parsed.object.items()) {
          if (!value.is_object() || !value.contains("offset")) continue;
          read_tar_member(m.path, value["offset"], value["size"], int64_t{1} << 30, &data);
          image_bytes += static_cast<int64_t>(data.size());
        }
      }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("read: %lld rows, %.1f MB of images, %.3f s (%.0f MB/s), peak RSS %.1f MB\n",
                static_cast<long long>(rows), image_bytes / 1e6, secs, image_bytes / 1e6 / secs,
                usage.ru_maxrss / 1024.0);
  }
  return 0;
}
