// How a run's operators really run — the device type `device: auto` became, the precision
// `precision: auto` became, the weights a model name resolved to — as the workers report it
// (kReady, driver/messages.h). The driver cannot resolve these itself: it may sit on a node without
// the workers' GPUs. The first report of a run is recorded in state.json ("resolved"); a resume
// whose workers resolve an operator to another device type, precision or weights fingerprint is
// refused with what changed, and so is a rank that disagrees with the others (its shards would
// give other bytes than the rest).
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shard/run_directory.h"
#include "worker/operator_spec.h"
#include "worker/shard_processor.h"

namespace clipshard {

// kReady's text and back. from_json throws std::invalid_argument on malformed text.
std::string encode_models(const std::vector<OperatorModelInfo>& models);
std::vector<OperatorModelInfo> decode_models(const std::string& text);

class ResolvedModels {
 public:
  // `dir`: the run directory, whose state.json exists (check_or_write_state). `check`: false when
  // this run has nothing left to compute (reports are then neither checked nor recorded, and the
  // summary shows the recorded values).
  ResolvedModels(const RunDirectory& dir, bool check);

  // A worker's kReady text: logs one line per operator ("rank R: OP: FILE (FORMAT, fingerprint
  // F) on DEVICE, PRECISION"), then compares device type, precision and fingerprint per operator
  // with the run's record and the ranks heard before; the first report of a run without a record
  // is written to state.json. Throws std::runtime_error saying what differs and what to do.
  // An empty report (a processor without models) is ignored.
  void accept(int rank, const std::string& text, std::ostream& log);

  // summary.json's "models": one object per pipeline operator with operator, model_name,
  // resolved_path, weights_file, format, fingerprint, device (type), precision and devices
  // ({rank: "cuda:1"} of this run's ranks; weights_file too becomes {rank: path} when the ranks
  // read different files). From this run's reports, else from state.json's record, else only
  // operator and model_name (a processor without models, e.g. in tests).
  nlohmann::json summary(const std::vector<OperatorSpec>& pipeline) const;

 private:
  const RunDirectory& dir_;
  bool check_;
  nlohmann::json recorded_;  // state.json's "resolved" (null: none)
  std::vector<std::pair<int, std::vector<OperatorModelInfo>>> reports_;  // in arrival order
};

}  // namespace clipshard
