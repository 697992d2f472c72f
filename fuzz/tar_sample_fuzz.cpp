// libFuzzer entry point: arbitrary bytes as a WebDataset tar through the tar scanner and the tar
// row builder (shard/tar_reader.h, shard/row_source.h). Checks their contract: only I/O errors
// throw (never bad bytes); samples are numbered 1, 2, ... with ranges that follow each other
// inside the file; every member lies inside the file; a scan started at any sample's `begin`
// (what a worker does for a planned shard) gives that same sample again; the plan counts the same
// samples. Any crash, sanitizer report or contract violation (abort) is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "shard/row_source.h"
#include "shard/shard_plan.h"
#include "shard/tar_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace clipshard;
  using fuzz::check;
  const int fd = memfd_create("tar_sample_fuzz", MFD_CLOEXEC);
  check(fd >= 0);
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    check(n > 0);
    done += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd) + "";
  const auto file_size = static_cast<int64_t>(size);
  std::vector<TarSample> samples;
  {
    TarSampleScanner scanner(path);
    TarSample s;
    int64_t previous_end = 0;
    while (scanner.next(&s)) {
      check(s.index == static_cast<int64_t>(samples.size()) + 1);
      check(s.begin >= previous_end && s.begin <= s.end && s.end <= file_size);
      for (const auto& m : s.members) {
        check(m.header_offset >= s.begin && m.data_offset > m.header_offset);
        check(m.data_offset + m.size <= file_size && m.size >= 0);
      }
      check(!s.members.empty() || !s.skipped.empty() || !s.problem.ok());
      previous_end = s.end;
      const ParsedLine row = tar_sample_to_row(s, path, "u.tar");
      check(row.kind == LineKind::kRow ? row.object.is_object() && row.object["__key__"] == s.key
                                       : !row.status.ok());
      samples.push_back(s);
    }
  }
  for (size_t i = 0; i < samples.size() && i < 8; ++i) {
    TarSampleScanner again(path, samples[i].begin, samples[i].index);
    TarSample s;
    check(again.next(&s));
    check(s.index == samples[i].index && s.key == samples[i].key && s.end == samples[i].end);
    check(s.members.size() == samples[i].members.size() &&
          s.problem.code == samples[i].problem.code);
  }
  const ShardPlan plan = plan_shards(std::vector<InputFile>{{path, "u.tar", InputKind::kTar}}, 2);
  check(plan.total_lines() == static_cast<int64_t>(samples.size()));
  ::close(fd);
  return 0;
}
