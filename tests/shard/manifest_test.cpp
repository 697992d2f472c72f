#include <fstream>

#include "common/test_paths.h"
#include "shard/manifest_reader.h"
#include "shard/manifest_row.h"
#include "shard/shard_plan.h"

namespace clipshard {
namespace {

void write(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

std::vector<ManifestLine> read_all(const std::filesystem::path& p, int64_t offset = 0,
                                   int64_t first = 1) {
  ManifestReader reader(p, offset, first);
  std::vector<ManifestLine> lines;
  ManifestLine line;
  while (reader.next(&line)) lines.push_back(line);
  return lines;
}

TEST(ManifestReader, CrlfAndMissingFinalNewline) {
  testing::TempDir tmp;
  write(tmp.path() / "m.jsonl", "{\"a\":1}\r\n\r\n{\"a\":2}");
  auto lines = read_all(tmp.path() / "m.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].text, "{\"a\":1}");
  EXPECT_EQ(lines[1].text, "");
  EXPECT_EQ(lines[2].text, "{\"a\":2}");
  EXPECT_EQ(lines[2].line_number, 3);
  EXPECT_EQ(lines[2].byte_offset, 11);
}

TEST(ManifestReader, EmptyFileHasNoLines) {
  testing::TempDir tmp;
  write(tmp.path() / "e.jsonl", "");
  EXPECT_TRUE(read_all(tmp.path() / "e.jsonl").empty());
}

TEST(ManifestReader, StartsAtOffset) {
  testing::TempDir tmp;
  write(tmp.path() / "m.jsonl", "a\nbb\nccc\n");
  auto lines = read_all(tmp.path() / "m.jsonl", 2, 2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, "bb");
  EXPECT_EQ(lines[0].line_number, 2);
  EXPECT_EQ(lines[1].text, "ccc");
}

TEST(ManifestRow, Classification) {
  EXPECT_EQ(parse_manifest_line("   ").kind, LineKind::kBlank);
  EXPECT_EQ(parse_manifest_line("").kind, LineKind::kBlank);
  auto row = parse_manifest_line(R"({"z":1,"a":"x"})");
  ASSERT_EQ(row.kind, LineKind::kRow);
  EXPECT_EQ(row.object.begin().key(), "z");  // key order kept
  EXPECT_EQ(parse_manifest_line("{\"a\":").status.code, RowError::kMalformedJson);
  EXPECT_EQ(parse_manifest_line("[1,2]").status.code, RowError::kNotAnObject);
  EXPECT_EQ(parse_manifest_line("\"s\"").status.code, RowError::kNotAnObject);
  EXPECT_EQ(parse_manifest_line("{\"a\":\"\xff\"}").status.code, RowError::kInvalidUtf8);
  EXPECT_EQ(parse_manifest_line(std::string("{\"a\":1}\0x", 9)).status.code,
            RowError::kMalformedJson);
  EXPECT_NE(parse_manifest_line("{\"a\":").status.message.find("parse error"), std::string::npos);
}

TEST(ManifestRow, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // cut short
}

TEST(ManifestRow, StringFields) {
  auto row = parse_manifest_line(R"({"img":"a.jpg","cap":null})").object;
  std::string v;
  EXPECT_TRUE(get_string_field(row, "img", &v).ok());
  EXPECT_EQ(v, "a.jpg");
  EXPECT_EQ(get_string_field(row, "cap", &v).code, RowError::kWrongType);
  EXPECT_EQ(get_string_field(row, "text", &v).code, RowError::kMissingKey);
}

TEST(ShardPlan, CutsLineRangesAcrossManifests) {
  testing::TempDir tmp;
  write(tmp.path() / "a.jsonl", "1\n2\n3\n4\n5");  // 5 lines, last without newline
  write(tmp.path() / "b.jsonl", "6\n7\n");
  write(tmp.path() / "c.jsonl", "");
  auto plan =
      plan_shards({tmp.path() / "a.jsonl", tmp.path() / "b.jsonl", tmp.path() / "c.jsonl"}, 2);
  ASSERT_EQ(plan.shards.size(), 4u);
  EXPECT_EQ(plan.total_lines(), 7);
  EXPECT_EQ(plan.shards[2].first_line, 5);
  EXPECT_EQ(plan.shards[2].line_count, 1);
  EXPECT_EQ(plan.shards[2].byte_begin, 8);
  EXPECT_EQ(plan.shards[2].byte_end, 9);
  EXPECT_EQ(plan.shards[3].manifest, 1);
  // Every shard read back from its offsets gives exactly its lines.
  int64_t total = 0;
  for (const auto& s : plan.shards) {
    auto lines = read_all(plan.manifests[s.manifest].path, s.byte_begin, s.first_line);
    lines.resize(std::min<size_t>(lines.size(), s.line_count));
    EXPECT_EQ(static_cast<int64_t>(lines.size()), s.line_count);
    total += s.line_count;
  }
  EXPECT_EQ(total, 7);
  EXPECT_NE(plan.manifests[0].hash, plan.manifests[1].hash);
}

TEST(ShardPlan, GlobExpansionIsSortedAndErrorsName) {
  testing::TempDir tmp;
  write(tmp.path() / "b.jsonl", "x\n");
  write(tmp.path() / "a.jsonl", "x\n");
  auto files = expand_inputs({(tmp.path() / "*.jsonl").string()});
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].path.filename(), "a.jsonl");
  try {
    expand_inputs({(tmp.path() / "none*.jsonl").string()});
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("none*.jsonl"), std::string::npos);
  }
}

}  // namespace
}  // namespace clipshard
