// report.html from a synthetic summary, the summary's per-operator lines and the scheduler's
// bounded timeline.
#include "driver/report.h"

#include <gtest/gtest.h>

#include <regex>

#include "driver/scheduler.h"
#include "driver/summary.h"
#include "shard/merge.h"

namespace clipshard {
namespace {

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

nlohmann::json synthetic_summary() {
  ScoreStats eval, filter;
  for (int i = 0; i < 100; ++i) eval.add(0.55 + i * 0.001);
  for (int i = 0; i < 10; ++i) filter.add(0.05 * i);
  filter.bad_rows = 2;
  nlohmann::json s = {
      {"run_dir", "/runs/<b>x&y</b>"},
      {"lines", 12},
      {"rows_in", 12},
      {"rows_out", 2},
      {"error_records", 2},
      {"errors_by_reason", {{"file_not_found", 2}}},
      {"error_examples",
       {{"file_not_found",
         {{{"manifest", "/data/m<script>alert(1)</script>.jsonl"},
           {"line", 7},
           {"reason", "file_not_found"},
           {"message", "cannot open \"img/a.jpg\" & <more>"},
           {"operator", "ImageClipFilter"},
           {"key", "image"}}}}}},
      {"operators",
       {{{"operator", "ImageCLIPEvaluator"},
         {"model_name", "tiny"},
         {"input_image_key", "image"},
         {"input_text_key", "caption"},
         {"output_key", "clip_score"},
         {"rows_in", 100},
         {"scores", eval.to_json(kReportHistogramBins)}},
        {{"operator", "ImageClipFilter"},
         {"model_name", "tiny"},
         {"threshold", 0.25},
         {"top_fraction", nullptr},
         {"rows_in", 12},
         {"kept", 5},
         {"dropped", 7},
         {"effective_threshold", 0.25},
         {"scores", filter.to_json(kReportHistogramBins, 0.25)}}}},
      {"timing", {{"this_run_seconds", 3.5}, {"lines_per_second_this_run", 3.4}}},
      {"timeline", {{"interval_s", 1.0}, {"lines", {4, 0, 8}}}},
      {"ranks_this_run",
       {{"1", {{"shards", 2}, {"lines", 12}, {"busy_seconds", 3.0}, {"lines_per_second", 4.0}}}}},
      {"models",
       {{{"operator", "ImageClipFilter"},
         {"model_name", "tiny"},
         {"resolved_path", "/models/tiny"},
         {"format", "huggingface-dir"},
         {"device", "cpu"},
         {"precision", "fp32"}}}},
  };
  return s;
}

TEST(Report, EscapesEveryStringFromData) {
  EXPECT_EQ(html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const std::string html = render_report(synthetic_summary());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("m&lt;script&gt;alert(1)&lt;/script&gt;.jsonl:7"), std::string::npos);
  EXPECT_NE(html.find("cannot open &quot;img/a.jpg&quot; &amp; &lt;more&gt;"), std::string::npos);
  EXPECT_NE(html.find("/runs/&lt;b&gt;x&amp;y&lt;/b&gt;"), std::string::npos);
}

TEST(Report, DrawsHistogramsCutsQuantilesThroughputAndModels) {
  const auto s = synthetic_summary();
  const std::string html = render_report(s);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(occurrences(html, "<svg class=histogram"), 2u);
  const size_t bars = s["operators"][0]["scores"]["histogram"]["counts"].size() +
                      s["operators"][1]["scores"]["histogram"]["counts"].size();
  EXPECT_EQ(occurrences(html, "<rect class=\"bar"), bars);
  // Only the filter has a cut; bins wholly below it are drawn as dropped.
  EXPECT_EQ(occurrences(html, "<line class=cut"), 1u);
  EXPECT_GT(occurrences(html, "class=\"bar dropped\""), 0u);
  EXPECT_NE(html.find("cut 0.25"), std::string::npos);
  // Quantile headers in order, counts and bad rows.
  const std::regex order("<th>p1</th><th>p5</th><th>p10</th><th>p25</th><th>p50</th>");
  EXPECT_TRUE(std::regex_search(html, order));
  EXPECT_NE(html.find("<td class=n>7</td>"), std::string::npos);  // dropped
  EXPECT_NE(html.find("<svg class=timeline"), std::string::npos);
  EXPECT_EQ(occurrences(html, "<rect class=rate x=\""), 3u);
  EXPECT_NE(html.find("huggingface-dir"), std::string::npos);
  // Self-contained: nothing fetched.
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
}

TEST(Report, ToleratesMissingAndMistypedFields) {
  EXPECT_NO_THROW(render_report(nlohmann::json::object()));
  EXPECT_NO_THROW(render_report(nlohmann::json::array()));
  nlohmann::json s = {{"operators", {{{"operator", 3}, {"scores", "x"}, {"kept", "many"}}}},
                      {"timeline", {{"interval_s", 0}, {"lines", {1}}}},
                      {"errors_by_reason", {{"x", "y"}}},
                      {"error_examples", {{"x", 5}}}};
  EXPECT_NO_THROW(render_report(s));
}

TEST(Summary, OperatorLinesSayWhatEachFilterDropped) {
  const auto lines = summary_operator_lines(synthetic_summary());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("ImageCLIPEvaluator scored 100 rows; scores p5 ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("ImageClipFilter kept 5 of 12 rows, dropped 7 (threshold 0.25), 2 of "
                           "them bad rows; scores p5 0, median 0.2",
                           0),
            0u)
      << lines[1];
  nlohmann::json top = {{"operators",
                         {{{"operator", "ImageClipFilter"},
                           {"top_fraction", 0.3},
                           {"threshold", 0.25},
                           {"rows_in", 10},
                           {"kept", 3},
                           {"dropped", 7},
                           {"effective_threshold", 0.4}}}}};
  EXPECT_EQ(summary_operator_lines(top)[0],
            "ImageClipFilter kept 3 of 10 rows, dropped 7 (top_fraction 0.3: cutoff 0.4)");
}

TEST(Timeline, StaysBoundedAndKeepsEveryLine) {
  Timeline t;
  int64_t total = 0;
  for (int s = 0; s < 5000; ++s) {
    t.add(s * 0.7, 3);
    total += 3;
  }
  EXPECT_LE(t.lines.size(), Timeline::kMaxPoints);
  int64_t sum = 0;
  for (auto v : t.lines) sum += v;
  EXPECT_EQ(sum, total);
  EXPECT_GE(t.interval_s * t.lines.size(), 4999 * 0.7);
  t.add(1.0, 0);  // nothing to add
  t.add(1.0, -2);
  sum = 0;
  for (auto v : t.lines) sum += v;
  EXPECT_EQ(sum, total);
}

}  // namespace
}  // namespace clipshard
