// Filtered WebDataset output (config `webdataset_output`): the kept samples of every input tar,
// written as a new tar of the same file name, so that the next stage of an img2dataset pipeline
// reads the filtered data in the format it already reads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "shard/shard_plan.h"

namespace clipshard {

// For every tar input of `plan` (in plan order) writes `out_dir/<its file name>` with the samples
// whose rows are in `output_jsonl` (the merged output: kept rows in input order), members copied
// byte for byte in input order (headers included), except each sample's `.json` member, rewritten
// with the row's `score_keys` added (a `.json` is created after the sample's members when it has
// none). Each tar is written atomically; the bytes depend only on the inputs and output.jsonl,
// so a resumed run writes identical tars. Returns the number of samples written. Throws
// std::runtime_error naming the file when a tar cannot be read or written, or when a row of
// output.jsonl claims a tar sample that is not there (inputs changed during the run).
int64_t write_webdataset_outputs(const ShardPlan& plan, const std::filesystem::path& output_jsonl,
                                 const std::filesystem::path& out_dir,
                                 const std::vector<std::string>& score_keys);

}  // namespace clipshard
