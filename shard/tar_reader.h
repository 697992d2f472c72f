// Reading WebDataset tar shards in place: a scanner that walks tar headers (ustar, pax extended
// headers, GNU long names, base-256 sizes beyond 8 GiB) and groups members into samples by the
// WebDataset key rule, reporting where each member's bytes lie so that nothing is ever extracted.
// It reads headers only (member data is skipped with a seek), so a planning scan of a 10 GB shard
// costs a few thousand small reads. Damage is data, not an exception: a sample whose headers are
// corrupt or whose bytes run past the end of the file carries a `problem` and the scan goes on
// (resynchronising on the next valid header) or ends.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "shard/row_status.h"

namespace clipshard {

struct TarMember {
  std::string name;       // full member path (pax `path`, GNU long name or ustar prefix/name)
  std::string extension;  // the name's file part after its first '.' ("seg.png"); "" if none
  int64_t data_offset = 0;
  int64_t size = 0;
  int64_t header_offset = 0;  // its first header block (extended headers included)
};

struct TarSample {
  int64_t index = 0;                 // 1-based position of the sample in the tar
  std::string key;                   // member path up to the first '.' of its file name
  int64_t begin = 0;                 // offset of the sample's first header (its scan starts here)
  int64_t end = 0;                   // offset one past its last block (= the next sample's begin)
  std::vector<TarMember> members;    // regular files, in tar order
  std::vector<std::string> skipped;  // "jpg (symlink)": non-file members with this key
  RowStatus problem;  // kCorruptTar / kTruncatedTar when part of the sample could not be read
};

// A sample's key and extension from a member path: `a/b/000012.seg.png` -> `a/b/000012`,
// `seg.png` (the first '.' of the file name, not of the directories).
void split_member_name(const std::string& name, std::string* key, std::string* extension);

class TarSampleScanner {
 public:
  // Opens `path` and positions the scan at `begin`, which must be a sample's `begin` from an
  // earlier scan of the same file (or 0); the first sample returned gets index `first_index`.
  // Throws std::runtime_error naming the file when it cannot be opened.
  explicit TarSampleScanner(const std::filesystem::path& path, int64_t begin = 0,
                            int64_t first_index = 1);
  ~TarSampleScanner();
  TarSampleScanner(const TarSampleScanner&) = delete;
  TarSampleScanner& operator=(const TarSampleScanner&) = delete;

  // The next sample; false after the last. Consecutive members with the same key form one sample;
  // directories are skipped; symlinks, hard links and other non-file members are listed in
  // `skipped` of their key's sample. A header with a bad checksum or size gives a sample (or joins
  // the one of its legible key) with problem kCorruptTar, and the scan resumes at the next valid
  // header; a member or header cut off by the end of the file gives kTruncatedTar and ends the
  // scan. A pax global header ('g') is ignored. Throws std::runtime_error only for I/O errors.
  bool next(TarSample* sample);

  // XXH3-64 of every header block read so far (with pax / long-name data): a cheap fingerprint
  // of the tar's member names and sizes.
  uint64_t header_hash() const;
  int64_t file_size() const;

 private:
  struct State;
  std::unique_ptr<State> state_;  // file, position, one member of lookahead, header hash
};

// Reads a member's bytes (pread at its data offset). kEmptyFile for a zero-byte member,
// kUnreadableFile when it is larger than `max_bytes` or the read fails, kTruncatedTar when the
// file ends before the member does.
RowStatus read_tar_member(const std::filesystem::path& tar, int64_t offset, int64_t size,
                          int64_t max_bytes, std::vector<uint8_t>* bytes);

}  // namespace clipshard
