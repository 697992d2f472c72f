// Reliability: hostile inputs. The tests build their own corpus (broken and unusual images, broken
// manifest lines, unusual manifest files), run the real job in process (tiny CLIP model, two
// worker threads, shards of a few lines) and check the outputs row by row: every input line is in
// output.jsonl (object rows, in input order, columns passed through) and/or errors.jsonl (bad rows
// and non-object lines, with the expected reason) exactly once; blank lines in neither; usable
// images score, unusable ones score 0.0; nothing is written outside the run directory.
#include <gif_lib.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"
#include "shard/manifest_row.h"

namespace clipshard {
namespace {

using Bytes = std::string;
namespace fs = std::filesystem;

void write_bytes(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

Bytes fixture_image(const std::string& name) {
  return read_file(testing::fixtures() / "images" / name);
}

// A PNG whose IHDR claims width x height, followed by a tiny IDAT: a decompression bomb header.
Bytes png_header_only(uint32_t width, uint32_t height) {
  Bytes out("\x89PNG\r\n\x1a\n", 8);
  auto chunk = [&](const std::string& type, const Bytes& data) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((data.size() >> s) & 0xFF));
    const Bytes body = type + data;
    out += body;
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((crc >> s) & 0xFF));
  };
  Bytes ihdr;
  for (uint32_t v : {width, height})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<char>((v >> s) & 0xFF));
  ihdr += Bytes("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB
  chunk("IHDR", ihdr);
  chunk("IDAT", Bytes("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9));
  chunk("IEND", "");
  return out;
}

int append_gif(GifFileType* gif, const GifByteType* data, int n) {
  static_cast<Bytes*>(gif->UserData)->append(reinterpret_cast<const char*>(data), n);
  return n;
}

// An animated GIF: `frames` full frames of 24x16, each one flat colour.
Bytes animated_gif(int frames) {
  Bytes out;
  int error = 0;
  GifFileType* gif = EGifOpen(&out, append_gif, &error);
  EXPECT_NE(gif, nullptr);
  EGifSetGifVersion(gif, true);
  std::vector<GifColorType> colours(4);
  for (int i = 0; i < 4; ++i)
    colours[i] = {static_cast<GifByteType>(60 * i), static_cast<GifByteType>(200 - 40 * i), 90};
  ColorMapObject* map = GifMakeMapObject(4, colours.data());
  EXPECT_EQ(EGifPutScreenDesc(gif, 24, 16, 8, 0, map), GIF_OK);
  const uint8_t netscape[11] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
  const uint8_t loop[3] = {1, 0, 0};
  EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE);
  EGifPutExtensionBlock(gif, 11, netscape);
  EGifPutExtensionBlock(gif, 3, loop);
  EGifPutExtensionTrailer(gif);
  for (int f = 0; f < frames; ++f) {
    const uint8_t gce[4] = {0, 10, 0, 0};
    EXPECT_EQ(EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, 4, gce), GIF_OK);
    EXPECT_EQ(EGifPutImageDesc(gif, 0, 0, 24, 16, false, nullptr), GIF_OK);
    std::vector<GifPixelType> row(24, static_cast<GifPixelType>(f % 4));
    for (int y = 0; y < 16; ++y) EXPECT_EQ(EGifPutLine(gif, row.data(), 24), GIF_OK);
  }
  EXPECT_EQ(EGifCloseFile(gif, &error), GIF_OK);
  GifFreeMapObject(map);
  return out;
}

// What must become of one manifest line.
enum class Fate {
  kScored,   // in output.jsonl with a score > 0, not in errors.jsonl
  kBadRow,   // in output.jsonl with score 0.0 and in errors.jsonl with `reason`
  kNotARow,  // in errors.jsonl only, with `reason`
  kBlank,    // in neither
};

struct Line {
  Bytes text;  // without the line terminator
  Fate fate;
  std::string reason;  // errors.jsonl "reason" for kBadRow / kNotARow
  std::string key;     // errors.jsonl "key" for kBadRow ("" = not checked)
};

std::string row(int id, const std::string& image, const std::string& caption = "a photo of a cat") {
  Json j;
  j["id"] = id;
  j["image"] = image;
  j["caption"] = caption;
  return j.dump();
}

// Files in `dir` (recursively), relative, with their sizes: to prove nothing else was written.
std::map<std::string, uintmax_t> listing(const fs::path& dir) {
  std::map<std::string, uintmax_t> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out[fs::relative(e.path(), dir).string()] = e.is_regular_file() ? e.file_size() : 0;
  }
  return out;
}

RunConfig evaluator_config(const fs::path& root, const std::vector<fs::path>& manifests,
                           const fs::path& out) {
  RunConfig c;
  for (const auto& m : manifests) c.inputs.push_back(m.string());
  c.output_dir = out.string();
  c.processing.source.image_root = root;
  c.processing.source.enforce_image_root = true;
  c.device = "cpu";
  c.processing.batch_size = 4;
  c.lines_per_shard = 5;
  c.processing.decode_threads = 2;
  c.torch_threads = 1;
  c.processing.decode.max_pixels = 100000000;  // 50000 x 50000 is 25 times that
  c.progress_interval_s = 0;
  OperatorSpec op;
  op.kind = OperatorKind::kClipEvaluator;
  op.model_name = (testing::fixtures() / "models" / "tiny" / "hf").string();
  op.image_key = "image";
  op.text_key = "caption";
  op.output_key = "clip_score";
  c.pipeline = {op};
  return c;
}

int run(const RunConfig& c, std::string* log_text = nullptr) {
  JobOptions options;
  options.in_process_workers = 2;
  std::ostringstream log;
  options.log = &log;
  const int status = run_job_in_process(c, options);
  if (log_text) *log_text = log.str();
  return status;
}

std::vector<Json> read_jsonl(const fs::path& path) {
  std::vector<Json> out;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    EXPECT_FALSE(line.empty()) << path;
    out.push_back(Json::parse(line));
  }
  return out;
}

// The row-by-row check. `lines` are the manifest's lines in order (one manifest).
void check_accounting(const std::vector<Line>& lines, const fs::path& run_dir,
                      const fs::path& manifest) {
  const std::vector<Json> output = read_jsonl(run_dir / "output.jsonl");
  const std::vector<Json> errors = read_jsonl(run_dir / "errors.jsonl");

  // errors.jsonl: at most one record per line, each for a line that must have one.
  std::map<int64_t, Json> error_of;
  for (const Json& e : errors) {
    const int64_t n = e.at("line").get<int64_t>();
    EXPECT_EQ(e.at("manifest").get<std::string>(), fs::absolute(manifest).string());
    EXPECT_TRUE(error_of.emplace(n, e).second) << "two error records for line " << n;
    EXPECT_FALSE(e.at("message").get<std::string>().empty()) << e.dump();
  }
  // output.jsonl: the object rows in input order, each once.
  size_t next_output = 0;
  int64_t expect_errors = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t n = static_cast<int64_t>(i) + 1;
    const Line& l = lines[i];
    SCOPED_TRACE("line " + std::to_string(n) + ": " + l.text.substr(0, 120));
    const bool has_error = error_of.count(n) > 0;
    if (l.fate == Fate::kBadRow || l.fate == Fate::kNotARow) {
      ++expect_errors;
      EXPECT_TRUE(has_error) << "no error record";
      if (has_error) {
        EXPECT_EQ(error_of[n].at("reason"), l.reason) << error_of[n].dump();
        if (!l.key.empty()) {
          EXPECT_EQ(error_of[n].value("key", ""), l.key) << error_of[n].dump();
        }
      }
    } else {
      EXPECT_FALSE(has_error) << (has_error ? error_of[n].dump() : "");
    }
    if (l.fate == Fate::kScored || l.fate == Fate::kBadRow) {
      ASSERT_LT(next_output, output.size()) << "row missing from output.jsonl";
      Json got = output[next_output++];
      ASSERT_TRUE(got.contains("clip_score")) << got.dump().substr(0, 200);
      const double score = got["clip_score"].get<double>();
      if (l.fate == Fate::kScored) {
        EXPECT_GT(score, 0.0);
        EXPECT_LE(score, 1.0);
      } else {
        EXPECT_EQ(score, 0.0);
      }
      got.erase("clip_score");
      // Every input column passes through unchanged and in order.
      const ParsedLine parsed = parse_manifest_line(l.text);
      ASSERT_EQ(parsed.kind, LineKind::kRow);
      EXPECT_EQ(got, parsed.object);
    }
  }
  EXPECT_EQ(next_output, output.size()) << "output.jsonl has rows that match no input line";
  EXPECT_EQ(static_cast<int64_t>(errors.size()), expect_errors);
}

// The image corpus, under root/img. Returns the manifest lines that use it.
std::vector<Line> image_corpus(const fs::path& root) {
  const fs::path img = root / "img";
  const Bytes jpeg = fixture_image("photo_640x480.jpg");
  const Bytes png = fixture_image("rgb_320x240.png");
  write_bytes(img / "photo.jpg", jpeg);
  write_bytes(img / "zero.jpg", "");
  write_bytes(img / "truncated.jpg", jpeg.substr(0, jpeg.size() / 2));
  write_bytes(img / "truncated.png", png.substr(0, png.size() / 2));
  write_bytes(img / "page.jpg", "<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n");
  write_bytes(img / "notes.txt.jpg", "just some text, not an image\n");
  fs::create_directories(img / "folder.jpg");
  write_bytes(img / "raster.ras", Bytes("\x59\xA6\x6A\x95", 4) + Bytes(64, '\0'));  // Sun raster
  write_bytes(img / "cmyk.jpg", fixture_image("cmyk_300x400.jpg"));
  write_bytes(img / "gray16.png", fixture_image("gray16_200x150.png"));
  write_bytes(img / "rgb16.png", fixture_image("rgb16_160x120.png"));
  write_bytes(img / "palette.png", fixture_image("palette_256x192.png"));
  write_bytes(img / "rgba.png", fixture_image("rgba_300x300.png"));
  write_bytes(img / "gray_alpha.png", fixture_image("gray_alpha_120x90.png"));
  write_bytes(img / "bilevel.png", fixture_image("bilevel_150x100.png"));
  write_bytes(img / "animated.gif", animated_gif(3));
  write_bytes(img / "bomb.png", png_header_only(50000, 50000));
  // A file outside the image root that an escaping path would reach.
  write_bytes(root.parent_path() / "secret.jpg", jpeg);

  int id = 0;
  auto scored = [&](const std::string& path) {
    return Line{row(++id, path), Fate::kScored, "", ""};
  };
  auto bad = [&](const std::string& path, const std::string& reason) {
    return Line{row(++id, path), Fate::kBadRow, reason, "image"};
  };
  return {
      scored("img/photo.jpg"),
      scored("img/cmyk.jpg"),
      scored("img/gray16.png"),
      scored("img/rgb16.png"),
      scored("img/palette.png"),
      scored("img/rgba.png"),
      scored("img/gray_alpha.png"),
      scored("img/bilevel.png"),
      scored("img/animated.gif"),
      bad("img/zero.jpg", "empty_file"),
      bad("img/truncated.jpg", "truncated_image"),
      bad("img/truncated.png", "truncated_image"),
      bad("img/page.jpg", "not_an_image"),
      bad("img/notes.txt.jpg", "not_an_image"),
      bad("img/folder.jpg", "is_directory"),
      bad("img/missing.jpg", "file_not_found"),
      bad("img/raster.ras", "unsupported_format"),
      bad("img/bomb.png", "image_too_large"),
      bad("../secret.jpg", "path_outside_root"),
      bad("img/../../secret.jpg", "path_outside_root"),
      bad("../../etc/passwd", "path_outside_root"),
      bad("/etc/passwd", "path_outside_root"),
      bad((root.parent_path() / "secret.jpg").string(), "path_outside_root"),
      bad("http://example.com/cat.jpg", "remote_path"),
      bad("https://example.com/cat.jpg?x=1", "remote_path"),
      bad("s3://bucket/cat.jpg", "remote_path"),
      bad("", "file_not_found"),
      scored("img/./sub/../photo.jpg"),  // stays inside the root: allowed
  };
}

// Broken, unusual and valid manifest lines (using img/photo.jpg of the image corpus).
std::vector<Line> line_corpus(int first_id) {
  int id = first_id;
  const std::string ok = "img/photo.jpg";
  std::vector<Line> lines;
  auto add = [&](Bytes text, Fate fate, std::string reason = "", std::string key = "") {
    lines.push_back({std::move(text), fate, std::move(reason), std::move(key)});
  };
  auto next = [&] { return std::to_string(++id); };
  add("{not json", Fate::kNotARow, "malformed_json");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"x\"", Fate::kNotARow,
      "malformed_json");
  add("{\"id\": " + next() + "} trailing", Fate::kNotARow, "malformed_json");
  // A number no double can hold (found by manifest_line_fuzz: it failed the whole job).
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"x\", \"n\": 1e999}",
      Fate::kNotARow, "malformed_json");
  add("[1, -1e400]", Fate::kNotARow, "malformed_json");
  add("[1, 2, 3]", Fate::kNotARow, "not_an_object");
  add("\"a string\"", Fate::kNotARow, "not_an_object");
  add("42", Fate::kNotARow, "not_an_object");
  add("null", Fate::kNotARow, "not_an_object");
  add("{\"id\": " + next() + ", \"caption\": \"no image key\"}", Fate::kBadRow, "missing_key",
      "image");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\"}", Fate::kBadRow, "missing_key",
      "caption");
  add("{\"id\": " + next() + ", \"image\": 17, \"caption\": \"x\"}", Fate::kBadRow, "wrong_type",
      "image");
  add("{\"id\": " + next() + ", \"image\": [\"" + ok + "\"], \"caption\": \"x\"}", Fate::kBadRow,
      "wrong_type", "image");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": null}", Fate::kBadRow,
      "wrong_type", "caption");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": {\"en\": \"x\"}}",
      Fate::kBadRow, "wrong_type", "caption");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"   \"}", Fate::kBadRow,
      "empty_caption", "caption");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"bad \xff\xfe utf8\"}",
      Fate::kNotARow, "invalid_utf8");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"overlong \xc0\xaf\"}",
      Fate::kNotARow, "invalid_utf8");
  add("{\"id\": " + next() + ", \"image\": \"" + ok +
          "\", \"caption\": \"surrogate \xed\xa0\x80\"}",
      Fate::kNotARow, "invalid_utf8");
  const Bytes nul(1, '\0');
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"a" + nul + "b\"}",
      Fate::kNotARow, "malformed_json");
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"x\"}" + nul + "{}",
      Fate::kNotARow, "malformed_json");
  add("", Fate::kBlank);
  add("   \t  ", Fate::kBlank);
  add("\r", Fate::kBlank);  // with the terminator: "\r\r\n"
  // Escapes and non-ASCII are fine and pass through.
  add("{\"id\": " + next() + ", \"image\": \"" + ok +
          "\", \"caption\": \"caf\\u00e9 \xe2\x80\x9cquoted\xe2\x80\x9d \\ud83d\\ude00 "
          "\xf0\x9f\x90\x88\"}",
      Fate::kScored);
  // A 10 MB caption: scored (truncated to 77 tokens), the run keeps going.
  add(
      "{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"" +
          [] {
            std::string s;
            s.reserve(10'000'000);
            while (s.size() < 10'000'000) s += "a very long caption ";
            return s;
          }() +
          "\"}",
      Fate::kScored);
  // Deep nesting: 512 levels are a row, 100000 levels are refused without a crash.
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"x\", \"deep\": " +
          std::string(kMaxJsonNesting - 1, '[') + std::string(kMaxJsonNesting - 1, ']') + "}",
      Fate::kScored);
  add("{\"id\": " + next() + ", \"image\": \"" + ok + "\", \"caption\": \"x\", \"deep\": " +
          std::string(100000, '[') + std::string(100000, ']') + "}",
      Fate::kNotARow, "malformed_json");
  // Duplicate rows are rows: both scored, both in the output.
  const std::string dup = row(++id, ok, "a duplicated row");
  add(dup, Fate::kScored);
  add(dup, Fate::kScored);
  // Extra columns of every type pass through unchanged.
  add("{\"id\": " + next() + ", \"image\": \"" + ok +
          "\", \"caption\": \"x\", \"n\": -1.5e300, \"b\": false, \"z\": null, \"o\": {\"k\": [1, "
          "{}]}, \"big\": 18446744073709551615}",
      Fate::kScored);
  return lines;
}

// The set-up of the small path cases: `lines` become <dir>/data/manifest.jsonl, the run (into
// <dir>/run) has no image root and no enforcement, so paths resolve against the manifest's folder;
// it must finish and account for every line.
void run_with_lines(const fs::path& dir, const std::vector<Line>& lines) {
  const fs::path root = dir / "data";
  const fs::path manifest = root / "manifest.jsonl";
  Bytes text;
  for (const Line& l : lines) text += l.text + "\n";
  write_bytes(manifest, text);
  RunConfig c = evaluator_config(root, {manifest}, dir / "run");
  c.processing.source.image_root.clear();
  c.processing.source.enforce_image_root = false;
  std::string log;
  ASSERT_EQ(run(c, &log), kExitOk) << log;
  check_accounting(lines, dir / "run", manifest);
}

TEST(HostileInputs, EveryLineIsAccountedForWithTheRightReason) {
  testing::TempDir tmp;
  const fs::path root = tmp.path() / "data";
  std::vector<Line> lines = image_corpus(root);
  const std::vector<Line> more = line_corpus(1000);
  lines.insert(lines.end(), more.begin(), more.end());
  // CRLF line endings on every other line, and no newline after the last line.
  const fs::path manifest = root / "manifest.jsonl";
  Bytes text;
  for (size_t i = 0; i < lines.size(); ++i) {
    text += lines[i].text;
    if (i + 1 < lines.size()) text += i % 2 ? "\r\n" : "\n";
  }
  write_bytes(manifest, text);
  const auto before = listing(tmp.path());

  const RunConfig c = evaluator_config(root, {manifest}, tmp.path() / "run");
  std::string log;
  ASSERT_EQ(run(c, &log), kExitOk) << log;
  check_accounting(lines, tmp.path() / "run", manifest);

  // Nothing was written outside the run directory, and the run directory holds only its files.
  auto after = listing(tmp.path());
  for (auto it = after.begin(); it != after.end();) {
    it = it->first.rfind("run", 0) == 0 ? after.erase(it) : std::next(it);
  }
  EXPECT_EQ(after, before);
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(tmp.path() / "run"))
    top.insert(e.path().filename().string());
  EXPECT_EQ(top,
            (std::set<std::string>{"output.jsonl", "errors.jsonl", "summary.json", "report.html",
                                   "embeddings.h5", "state.json", "run.lock", "parts"}));

  // The summary's counts agree with the corpus.
  const auto summary = nlohmann::json::parse(read_file(tmp.path() / "run" / "summary.json"));
  std::map<std::string, int64_t> reasons;
  int64_t blank = 0, records = 0;
  for (const Line& l : lines) {
    if (l.fate == Fate::kBlank) ++blank;
    if (!l.reason.empty()) ++reasons[l.reason], ++records;
  }
  EXPECT_EQ(summary["lines"], static_cast<int64_t>(lines.size()));
  EXPECT_EQ(summary["blank_lines"], blank);
  EXPECT_EQ(summary["error_records"], records);
  for (const auto& [reason, n] : reasons)
    EXPECT_EQ(summary["errors_by_reason"][reason], n) << reason;
  EXPECT_GE(summary["captions_truncated"].get<int64_t>(), 1);
  std::cout << "hostile inputs: " << lines.size() << " lines, "
            << read_jsonl(tmp.path() / "run" / "output.jsonl").size() << " output rows, "
            << read_jsonl(tmp.path() / "run" / "errors.jsonl").size() << " error records\n";

  // A rerun of the finished directory changes nothing.
  const Bytes output = read_file(tmp.path() / "run" / "output.jsonl");
  const Bytes errors = read_file(tmp.path() / "run" / "errors.jsonl");
  ASSERT_EQ(run(c), kExitOk);
  EXPECT_EQ(read_file(tmp.path() / "run" / "output.jsonl"), output);
  EXPECT_EQ(read_file(tmp.path() / "run" / "errors.jsonl"), errors);
}

TEST(HostileInputs, WithoutEnforcementEscapingPathsAreOrdinaryPaths) {
  // enforce_image_root off (the default): "../x" is resolved against the manifest's folder and
  // read like any other path; /etc/passwd is a file but not an image.
  testing::TempDir tmp;
  write_bytes(tmp.path() / "outside.jpg", fixture_image("photo_640x480.jpg"));
  const std::vector<Line> lines = {
      {row(1, "../outside.jpg"), Fate::kScored, "", ""},
      {row(2, "/etc/passwd"), Fate::kBadRow, "not_an_image", "image"},
      {row(3, (tmp.path() / "outside.jpg").string()), Fate::kScored, "", ""},
      {row(4, "ftp://host/x.jpg"), Fate::kBadRow, "remote_path", "image"},
  };
  run_with_lines(tmp.path(), lines);
}

TEST(HostileInputs, SpecialFilesAreRowErrorsNotHangs) {
  // A FIFO without a writer and character devices named by the manifest: each one a per-row
  // unreadable_file record, promptly (a blocking open of the FIFO would hold a decode thread until
  // the worker timeout aborted the whole job).
  testing::TempDir tmp;
  const fs::path root = tmp.path() / "data";
  write_bytes(root / "img" / "photo.jpg", fixture_image("photo_640x480.jpg"));
  ASSERT_EQ(::mkfifo((root / "img" / "pipe.jpg").c_str(), 0600), 0);
  const std::vector<Line> lines = {
      {row(1, "img/pipe.jpg"), Fate::kBadRow, "unreadable_file", "image"},
      {row(2, "/dev/zero"), Fate::kBadRow, "unreadable_file", "image"},
      {row(3, "/dev/null"), Fate::kBadRow, "unreadable_file", "image"},
      {row(4, "img/photo.jpg"), Fate::kScored, "", ""},
  };
  const auto start = std::chrono::steady_clock::now();
  run_with_lines(tmp.path(), lines);
  // The whole run (model load included) is seconds; a blocked open would never finish.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 120.0);
}

TEST(HostileInputs, UnusualManifestFiles) {
  // An empty manifest, one of blank lines only, a CRLF one without a final newline, and a
  // duplicate of it given twice (kept once): one run, outputs in input order.
  testing::TempDir tmp;
  const fs::path root = tmp.path() / "data";
  write_bytes(root / "img" / "photo.jpg", fixture_image("photo_640x480.jpg"));
  write_bytes(root / "a_empty.jsonl", "");
  write_bytes(root / "b_blank.jsonl", "\n\n   \n\r\n");
  write_bytes(root / "c_crlf.jsonl", row(1, "img/photo.jpg") + "\r\n" + row(2, "img/photo.jpg") +
                                         "\r\n\r\n" + row(3, "img/nope.jpg"));
  RunConfig c = evaluator_config(root, {root / "a_empty.jsonl"}, tmp.path() / "run");
  c.inputs = {(root / "a_empty.jsonl").string(), (root / "b_*.jsonl").string(),
              (root / "c_crlf.jsonl").string(), (root / "c_crlf.jsonl").string()};
  std::string log;
  ASSERT_EQ(run(c, &log), kExitOk) << log;
  const auto output = read_jsonl(tmp.path() / "run" / "output.jsonl");
  const auto errors = read_jsonl(tmp.path() / "run" / "errors.jsonl");
  ASSERT_EQ(output.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(output[i]["id"], i + 1);
  EXPECT_GT(output[0]["clip_score"].get<double>(), 0.0);
  EXPECT_EQ(output[2]["clip_score"].get<double>(), 0.0);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["line"], 4);
  EXPECT_EQ(errors[0]["reason"], "file_not_found");

  // Only empty manifests: a finished run with empty outputs.
  RunConfig empty = evaluator_config(root, {root / "a_empty.jsonl"}, tmp.path() / "run-empty");
  ASSERT_EQ(run(empty, &log), kExitOk) << log;
  EXPECT_EQ(read_file(tmp.path() / "run-empty" / "output.jsonl"), "");
  EXPECT_EQ(read_file(tmp.path() / "run-empty" / "errors.jsonl"), "");
  EXPECT_TRUE(fs::exists(tmp.path() / "run-empty" / "summary.json"));
}

}  // namespace
}  // namespace clipshard
