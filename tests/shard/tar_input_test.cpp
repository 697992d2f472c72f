// Input expansion (braces, globs, kinds) and the WebDataset tar scanner: grouping, long names,
// damaged tars, planning of tar shards and reading a shard from its planned offset.
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "shard/input_expansion.h"
#include "shard/row_source.h"
#include "shard/shard_plan.h"
#include "shard/tar_reader.h"
#include "shard/webdataset_output.h"

namespace clipshard {
namespace {

void write(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// Generates tars with tests/common/make_webdataset.py (Python's tarfile).
void make_tars(const std::string& args) {
  const std::string cmd = "/usr/bin/python3 " +
                          (testing::source_dir() / "tests/common/make_webdataset.py").string() +
                          " " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::vector<SourceRow> read_rows(const std::filesystem::path& tar, int64_t begin = 0,
                                 int64_t first = 1) {
  RowSource source(InputKind::kTar, tar, "url/" + tar.filename().string(), begin, first);
  std::vector<SourceRow> rows;
  SourceRow row;
  while (source.next(&row)) rows.push_back(row);
  return rows;
}

TEST(InputExpansion, BraceRangesAndLists) {
  EXPECT_EQ(expand_braces("s/{00000..00002}.tar"),
            (std::vector<std::string>{"s/00000.tar", "s/00001.tar", "s/00002.tar"}));
  EXPECT_EQ(expand_braces("{8..10}"), (std::vector<std::string>{"8", "9", "10"}));
  EXPECT_EQ(expand_braces("{3..1}"), (std::vector<std::string>{"3", "2", "1"}));
  EXPECT_EQ(expand_braces("{a,b}/{1..2}"), (std::vector<std::string>{"a/1", "a/2", "b/1", "b/2"}));
  EXPECT_EQ(expand_braces("x{a,{b,c}}"), (std::vector<std::string>{"xa", "xb", "xc"}));
  EXPECT_EQ(expand_braces("lit{x}.tar"), (std::vector<std::string>{"lit{x}.tar"}));
  EXPECT_EQ(expand_braces("plain.jsonl"), (std::vector<std::string>{"plain.jsonl"}));
  EXPECT_THROW(expand_braces("{0..99999999999}"), std::runtime_error);
}

TEST(InputExpansion, KindsOrderAndErrorsNameThePattern) {
  testing::TempDir tmp;
  for (const char* n : {"00000.tar", "00001.tar", "00002.tar", "m.jsonl"})
    write(tmp.path() / n, "");
  const std::string dir = tmp.path().string();
  auto files =
      expand_inputs({dir + "/m.jsonl", dir + "/{00000..00001}.tar", dir + "/0000[12].tar"});
  ASSERT_EQ(files.size(), 4u);  // 00001.tar matched twice, kept once
  EXPECT_EQ(files[0].kind, InputKind::kManifest);
  EXPECT_EQ(files[1].kind, InputKind::kTar);
  EXPECT_EQ(files[1].given, dir + "/00000.tar");
  EXPECT_EQ(files[3].path.filename(), "00002.tar");
  try {
    expand_inputs({dir + "/{00000..00005}.tar"});
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("00003.tar"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("{00000..00005}"), std::string::npos) << e.what();
  }
  EXPECT_THROW(expand_inputs({dir + "/nothing*.tar"}), std::runtime_error);
}

TEST(TarScanner, KeyRule) {
  std::string key, ext;
  split_member_name("a/b.c/000012.seg.png", &key, &ext);
  EXPECT_EQ(key, "a/b.c/000012");
  EXPECT_EQ(ext, "seg.png");
  split_member_name("noext", &key, &ext);
  EXPECT_EQ(key, "noext");
  EXPECT_EQ(ext, "");
}

// Every hostile case: the samples, in order, with their keys; damaged ones as error rows with the
// reason the scanner (not the worker) decides. Worker-level reasons (missing_key, empty_file) are
// checked end to end by tests/reliability/hostile_tar_test.
TEST(TarScanner, HostileCases) {
  testing::TempDir tmp;
  make_tars("hostile " + tmp.path().string() + " " +
            (testing::fixtures() / "images/photo_640x480.jpg").string());
  std::ifstream in(tmp.path() / "expected.json");
  const auto expected = nlohmann::json::parse(in);
  int cases = 0, samples = 0;
  for (const auto& [name, list] : expected.items()) {
    SCOPED_TRACE(name);
    const auto rows = read_rows(tmp.path() / (name + ".tar"));
    ASSERT_EQ(rows.size(), list.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string key = list[i][0], reason = list[i][1];
      EXPECT_EQ(rows[i].sample, key);
      EXPECT_EQ(rows[i].line, static_cast<int64_t>(i + 1));
      const bool scanner_error = reason == "corrupt_tar" || reason == "truncated_tar" ||
                                 reason == "invalid_utf8" || reason == "malformed_json";
      if (scanner_error) {
        EXPECT_EQ(rows[i].parsed.kind, LineKind::kBroken) << key;
        EXPECT_EQ(row_error_name(rows[i].parsed.status.code), reason) << key;
      } else {
        ASSERT_EQ(rows[i].parsed.kind, LineKind::kRow) << key << rows[i].parsed.status.message;
        EXPECT_EQ(rows[i].parsed.object["__key__"], key);
        EXPECT_EQ(rows[i].parsed.object["__url__"], "url/" + name + ".tar");
      }
      ++samples;
    }
    ++cases;
  }
  std::cout << "hostile tar cases: " << cases << ", samples: " << samples << "\n";
  EXPECT_EQ(cases, 8);
}

// A member of 9 GiB (sparse file: nothing is written) has a base-256 size field; the scan steps
// over its data without reading it and finds the member after it.
TEST(TarScanner, MemberBeyond8GiB) {
  testing::TempDir tmp;
  const auto tar = tmp.path() / "huge.tar";
  const std::string script =
      "import tarfile,io,sys\n"
      "f=open(sys.argv[1],'wb')\n"
      "i=tarfile.TarInfo('huge.bin'); i.size=9<<30\n"
      "f.write(i.tobuf(tarfile.GNU_FORMAT))\n"
      "f.seek(512+(9<<30))\n"
      "j=tarfile.TarInfo('after.txt'); j.size=5\n"
      "f.write(j.tobuf(tarfile.GNU_FORMAT)+b'hello'+b'\\0'*(507+1024))\n";
  write(tmp.path() / "make.py", script);
  const std::string cmd =
      "/usr/bin/python3 " + (tmp.path() / "make.py").string() + " " + tar.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto rows = read_rows(tar);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].sample, "huge");
  EXPECT_EQ(rows[1].sample, "after");
  EXPECT_EQ(rows[1].parsed.object["txt"], "hello");
}

TEST(TarScanner, RowsCarryJsonTextAndMemberReferences) {
  testing::TempDir tmp;
  make_tars("hostile " + tmp.path().string() + " " +
            (testing::fixtures() / "images/photo_640x480.jpg").string());
  const auto rows = read_rows(tmp.path() / "members.tar");
  const Json& good = rows[0].parsed.object;
  EXPECT_EQ(good["txt"], "a caption");
  ASSERT_TRUE(good["jpg"].is_object());
  EXPECT_EQ(good["jpg"]["member"], "good1.jpg");
  EXPECT_EQ(good["jpg"]["offset"].get<int64_t>() % 512, 0);
  EXPECT_EQ(good["jpg"]["size"].get<int64_t>(),
            static_cast<int64_t>(
                std::filesystem::file_size(testing::fixtures() / "images/photo_640x480.jpg")));
  // symlinked: the symlink is reported, its caption kept, no jpg.
  const SourceRow& sym = rows[7];
  EXPECT_EQ(sym.sample, "symlinked");
  EXPECT_FALSE(sym.parsed.object.contains("jpg"));
  ASSERT_EQ(sym.skipped.size(), 1u);
  EXPECT_EQ(sym.skipped[0], "jpg (symlink)");
  EXPECT_TRUE(rows[12].parsed.object.contains("png"));
}

TEST(TarPlan, ShardsOfSamplesReadFromTheirOffset) {
  testing::TempDir tmp;
  make_tars("corpus " + tmp.path().string() + " " + (testing::fixtures() / "images").string() +
            " 23 10");
  const auto tar = tmp.path() / "shards/00000.tar";
  const ShardPlan plan = plan_shards(std::vector<std::filesystem::path>{tar}, 4);
  ASSERT_EQ(plan.manifests.size(), 1u);
  EXPECT_EQ(plan.manifests[0].lines, 10);
  ASSERT_EQ(plan.shards.size(), 3u);  // 4 + 4 + 2 samples
  const auto all = read_rows(tar);
  for (const Shard& s : plan.shards) {
    const auto part = read_rows(tar, s.byte_begin, s.first_line);
    ASSERT_GE(part.size(), static_cast<size_t>(s.line_count));
    for (int64_t i = 0; i < s.line_count; ++i) {
      EXPECT_EQ(part[i].line, s.first_line + i);
      EXPECT_EQ(part[i].parsed.object, all[s.first_line + i - 1].parsed.object);
    }
  }
  const auto fp = manifest_fingerprints(plan);
  EXPECT_EQ(fp[0]["kind"], "tar");
  EXPECT_EQ(fp[0]["lines"], 10);
  // The header hash changes when a member is renamed, even with the same size.
  const ShardPlan again = plan_shards(std::vector<std::filesystem::path>{tar}, 4);
  EXPECT_EQ(again.manifests[0].hash, plan.manifests[0].hash);
}

// Filtered tar output: only the samples with a row in output.jsonl, a .json created where the
// sample had none, the second of two samples with the same key told apart by its image offset,
// and a tar that Python's tarfile reads back.
TEST(WebdatasetOutput, KeptSamplesCopiedWithScores) {
  testing::TempDir tmp;
  make_tars("hostile " + tmp.path().string() + " " +
            (testing::fixtures() / "images/photo_640x480.jpg").string());
  const auto tar = tmp.path() / "members.tar";
  const ShardPlan plan =
      plan_shards(std::vector<InputFile>{{tar, "in/members.tar", InputKind::kTar}}, 100);
  const auto rows = read_rows(tar);
  std::string output;
  for (const auto& row : rows) {
    const std::string key = row.sample;
    // good1 (no .json), the second "dup" (index 12), pngalt
    if (!(key == "good1" || (key == "dup" && row.line == 12) || key == "pngalt")) continue;
    Json object = row.parsed.object;
    object["__url__"] = "in/members.tar";
    object["clip_score"] = static_cast<double>(row.line) / 4.0;  // exact in binary
    output += object.dump() + "\n";
  }
  write(tmp.path() / "output.jsonl", output);
  EXPECT_EQ(write_webdataset_outputs(plan, tmp.path() / "output.jsonl", tmp.path() / "wds",
                                     {"clip_score"}),
            3);
  const auto out = read_rows(tmp.path() / "wds/members.tar");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].sample, "good1");
  EXPECT_EQ(out[0].parsed.object["clip_score"], 0.25);  // the created .json, merged into the row
  EXPECT_EQ(out[1].sample, "dup");
  EXPECT_EQ(out[1].parsed.object["clip_score"], 3.0);
  EXPECT_EQ(out[2].sample, "pngalt");
  EXPECT_TRUE(out[2].parsed.object.contains("png"));
  const std::string check =
      "/usr/bin/python3 -c \"import tarfile,sys; t=tarfile.open(sys.argv[1]); "
      "n=[m.name for m in t]; assert n==['good1.jpg','good1.txt','good1.json','dup.jpg',"
      "'dup.txt','dup.json','pngalt.png','pngalt.txt','pngalt.json'], n; "
      "assert t.extractfile('good1.jpg').read()==open(sys.argv[2],'rb').read()\" " +
      (tmp.path() / "wds/members.tar").string() + " " +
      (testing::fixtures() / "images/photo_640x480.jpg").string();
  EXPECT_EQ(std::system(check.c_str()), 0);
}

}  // namespace
}  // namespace clipshard
