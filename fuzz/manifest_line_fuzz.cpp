// libFuzzer entry point: arbitrary bytes as one JSONL manifest line through parse_manifest_line and
// what the worker then does with a row (string fields, re-serialisation). Checks the contract of
// shard/manifest_row.h: never throws; blank iff whitespace only; a row is a JSON object from a
// valid UTF-8 line without NUL bytes, and it serialises (strictly) and re-parses to the same
// object; a broken line carries an error code and a message. Any crash, sanitizer report or
// contract violation (abort) is a finding. Build and run: scripts/ci-fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "shard/manifest_row.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace clipshard;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ParsedLine parsed = parse_manifest_line(text);
  const bool blank = text.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
  check(blank == (parsed.kind == LineKind::kBlank));
  switch (parsed.kind) {
    case LineKind::kBlank:
      check(parsed.status.ok());
      break;
    case LineKind::kBroken:
      check(!parsed.status.ok() && !parsed.status.message.empty());
      break;
    case LineKind::kRow: {
      check(parsed.status.ok() && parsed.object.is_object());
      check(is_valid_utf8(text) && text.find('\0') == std::string_view::npos);
      // What the worker does with a row: read the image and caption keys, write the row back out.
      for (const char* key : {"image", "caption", "text", "image_path"}) {
        std::string value;
        const RowStatus status = get_string_field(parsed.object, key, &value);
        check(status.ok() || status.code == RowError::kMissingKey ||
              status.code == RowError::kWrongType);
        if (status.ok()) check(is_valid_utf8(value));
      }
      std::string dumped;
      try {
        dumped = parsed.object.dump();  // strict: a row from a valid UTF-8 line stays valid
      } catch (...) {
        std::abort();
      }
      check(is_valid_utf8(dumped));
      check(Json::parse(dumped) == parsed.object);
      break;
    }
  }
  return 0;
}
