#include "shard/row_source.h"

#include <algorithm>
#include <array>

namespace clipshard {

namespace {

// Reads a small member whole (text or JSON); kUnreadableFile when it is over the limit.
RowStatus read_small_member(const std::filesystem::path& tar, const TarMember& m,
                            std::string* out) {
  if (m.size > kMaxTarTextMember)
    return RowStatus::Error(RowError::kUnreadableFile,
                            "member " + m.name + " is " + std::to_string(m.size) +
                                " bytes, more than a text member may have");
  out->clear();
  if (m.size == 0) return RowStatus::Ok();
  std::vector<uint8_t> bytes;
  RowStatus status = read_tar_member(tar, m.data_offset, m.size, kMaxTarTextMember, &bytes);
  if (!status.ok()) return status;
  out->assign(bytes.begin(), bytes.end());
  return RowStatus::Ok();
}

}  // namespace

bool is_text_extension(const std::string& e) { return e == "txt" || e == "text" || e == "caption"; }

bool is_image_extension(const std::string& e) {
  static const std::array<const char*, 8> kImages = {"jpg", "jpeg", "png", "webp",
                                                     "gif", "bmp",  "tif", "tiff"};
  return std::find(kImages.begin(), kImages.end(), e) != kImages.end();
}

ParsedLine tar_sample_to_row(const TarSample& sample, const std::filesystem::path& tar,
                             const std::string& url) {
  ParsedLine result;
  result.kind = LineKind::kBroken;
  if (!sample.problem.ok()) {
    result.status = sample.problem;
    return result;
  }
  Json row = Json::object();
  row["__key__"] = sample.key;
  row["__url__"] = url;
  // The .json member first, so that members named like one of its fields take precedence.
  for (const TarMember& m : sample.members) {
    if (m.extension != "json") continue;
    std::string text;
    RowStatus status = read_small_member(tar, m, &text);
    if (status.ok()) {
      ParsedLine parsed = parse_manifest_line(text);
      if (parsed.kind == LineKind::kBroken && parsed.status.code != RowError::kNotAnObject) {
        status = parsed.status;
        status.message = "member " + m.name + ": " + status.message;
      } else if (parsed.kind == LineKind::kRow) {
        for (auto& [k, v] : parsed.object.items()) {
          if (k == "__key__" || k == "__url__") continue;  // the tar's identity wins
          row[k] = v;
        }
      }
    }
    if (!status.ok()) {
      result.status = status;
      return result;
    }
  }
  for (const TarMember& m : sample.members) {
    if (is_text_extension(m.extension)) {
      std::string text;
      RowStatus status = read_small_member(tar, m, &text);
      if (status.ok() && !is_valid_utf8(text))
        status = RowStatus::Error(RowError::kInvalidUtf8, "member " + m.name + " is not UTF-8");
      if (!status.ok()) {
        result.status = status;
        return result;
      }
      row[m.extension] = text;
    } else if (is_image_extension(m.extension)) {
      row[m.extension] = {{"member", m.name}, {"offset", m.data_offset}, {"size", m.size}};
    }
  }
  result.kind = LineKind::kRow;
  result.object = std::move(row);
  return result;
}

RowSource::RowSource(InputKind kind, const std::filesystem::path& path, std::string url,
                     int64_t byte_begin, int64_t first_line)
    : kind_(kind), path_(path), url_(std::move(url)) {
  if (kind_ == InputKind::kTar)
    tar_ = std::make_unique<TarSampleScanner>(path, byte_begin, first_line);
  else
    manifest_ = std::make_unique<ManifestReader>(path, byte_begin, first_line);
}

bool RowSource::next(SourceRow* row) {
  *row = SourceRow{};
  if (manifest_) {
    ManifestLine line;
    if (!manifest_->next(&line)) return false;
    row->line = line.line_number;
    row->parsed = parse_manifest_line(line.text);
    return true;
  }
  TarSample sample;
  if (!tar_->next(&sample)) return false;
  row->line = sample.index;
  row->from_tar = true;
  row->sample = sample.key;
  row->skipped = sample.skipped;
  row->parsed = tar_sample_to_row(sample, path_, url_);
  return true;
}

}  // namespace clipshard
