#include "driver/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

namespace clipshard {

namespace {

using json = nlohmann::json;

// Field access that never throws: a summary from an older version or a hand-edited file still
// renders, with the missing parts left out.
const json& field(const json& j, const char* key) {
  static const json null_value;
  if (!j.is_object()) return null_value;
  const auto it = j.find(key);
  return it == j.end() ? null_value : *it;
}

double number(const json& j, const char* key, double fallback = 0.0) {
  const json& v = field(j, key);
  return v.is_number() ? v.get<double>() : fallback;
}

std::string text(const json& j, const char* key) {
  const json& v = field(j, key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string fmt(double v, const char* format = "%.4g") {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string count(double v) { return fmt(v, "%.0f"); }

// An escaped JSON value for a table cell (strings without their quotes).
std::string cell(const json& v) {
  if (v.is_string()) return html_escape(v.get<std::string>());
  if (v.is_null()) return "";
  if (v.is_number_float()) return fmt(v.get<double>());
  return html_escape(v.dump(-1, ' ', false, json::error_handler_t::replace));
}

// summary.json's quantile names, in order (a json object sorts its keys: p10 before p5).
const char* const kQuantiles[] = {"p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99"};

const char* kStyle = R"(
body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;margin:6px 0 12px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.path{font-family:monospace;font-size:12px;word-break:break-all}
.note{color:#666;font-size:12px}
svg{display:block;margin:6px 0}
svg text{font-size:11px;fill:#333}
.bar{fill:#4a7bd0}.bar.dropped{fill:#c9c9c9}.cut{stroke:#d03030;stroke-width:2}
.axis{stroke:#666;stroke-width:1}.rate{fill:#3a9a5a}
)";

// A histogram of `counts` over [lo, hi] with a vertical line at `cut` (if finite); bars left of
// the cut are drawn as dropped when `shade_dropped`.
std::string histogram_svg(const json& hist, double cut, bool shade_dropped) {
  const json& counts = field(hist, "counts");
  if (!counts.is_array() || counts.empty()) return "<p class=note>no scores</p>";
  const double lo = number(hist, "lo"), hi = number(hist, "hi", 1.0);
  const double width = 720, height = 200, left = 50, bottom = 24, top = 14;
  const double plot_w = width - left - 10, plot_h = height - bottom - top;
  int64_t max_count = 1;
  for (const auto& c : counts)
    if (c.is_number()) max_count = std::max<int64_t>(max_count, c.get<int64_t>());
  std::ostringstream o;
  o << "<svg class=histogram width=" << width << " height=" << height << " viewBox=\"0 0 " << width
    << ' ' << height << "\" role=img aria-label=\"score histogram\">";
  const size_t n = counts.size();
  const double bw = plot_w / n;
  for (size_t i = 0; i < n; ++i) {
    const int64_t c = counts[i].is_number() ? counts[i].get<int64_t>() : 0;
    const double h = c > 0 ? std::max(1.0, plot_h * c / max_count) : 0.0;
    const double bin_hi = lo + (hi - lo) * (i + 1) / n;
    const bool dropped = shade_dropped && std::isfinite(cut) && bin_hi <= cut;
    o << "<rect class=\"bar" << (dropped ? " dropped" : "") << "\" x=\"" << fmt(left + i * bw)
      << "\" y=\"" << fmt(top + plot_h - h) << "\" width=\"" << fmt(std::max(1.0, bw - 1))
      << "\" height=\"" << fmt(h) << "\" data-count=\"" << c << "\"><title>"
      << fmt(lo + (hi - lo) * i / n) << " – " << fmt(bin_hi) << ": " << c << "</title></rect>";
  }
  o << "<line class=axis x1=" << left << " y1=" << top + plot_h << " x2=" << left + plot_w
    << " y2=" << top + plot_h << " />";
  o << "<text x=" << left << " y=" << height - 6 << ">" << fmt(lo) << "</text>";
  o << "<text x=" << left + plot_w << " y=" << height - 6 << " text-anchor=end>" << fmt(hi)
    << "</text>";
  o << "<text x=" << left - 4 << " y=" << top + 8 << " text-anchor=end>" << max_count << "</text>";
  o << "<text x=" << left - 4 << " y=" << top + plot_h << " text-anchor=end>0</text>";
  if (std::isfinite(cut) && hi > lo) {
    const double x = left + plot_w * std::clamp((cut - lo) / (hi - lo), 0.0, 1.0);
    o << "<line class=cut x1=\"" << fmt(x) << "\" y1=" << top - 4 << " x2=\"" << fmt(x)
      << "\" y2=" << top + plot_h << " />";
    o << "<text x=\"" << fmt(x + 3) << "\" y=" << top - 3 << ">cut " << fmt(cut) << "</text>";
  }
  o << "</svg>";
  return o.str();
}

std::string operator_section(const json& op, size_t index) {
  std::ostringstream o;
  const json& scores = field(op, "scores");
  const bool is_filter = field(op, "kept").is_number();
  const json& cut_value = field(op, "effective_threshold");
  const double cut = cut_value.is_number() ? cut_value.get<double>() : std::nan("");
  o << "<section class=operator><h3>" << index + 1 << ". " << html_escape(text(op, "operator"))
    << "</h3>";
  o << "<p class=path>model " << html_escape(text(op, "model_name")) << "; image key "
    << html_escape(text(op, "input_image_key")) << ", text key "
    << html_escape(text(op, "input_text_key"));
  if (!is_filter) o << ", output key " << html_escape(text(op, "output_key"));
  o << "</p>";
  o << "<table><tr><th>rows in</th>";
  if (is_filter) o << "<th>kept</th><th>dropped</th><th>rule</th>";
  o << "<th>bad rows (not in the distribution)</th></tr><tr><td class=n>"
    << count(number(op, "rows_in")) << "</td>";
  if (is_filter) {
    o << "<td class=n>" << count(number(op, "kept")) << "</td><td class=n>"
      << count(number(op, "dropped")) << "</td><td>";
    if (field(op, "top_fraction").is_number())
      o << "top_fraction " << fmt(number(op, "top_fraction")) << " → cutoff " << fmt(cut);
    else
      o << "sim ≥ " << fmt(number(op, "threshold"));
    o << "</td>";
  }
  o << "<td class=n>" << count(number(scores, "bad_rows")) << "</td></tr></table>";
  o << histogram_svg(field(scores, "histogram"), is_filter ? cut : std::nan(""), is_filter);
  const json& q = field(scores, "quantiles");
  if (q.is_object()) {
    o << "<table class=quantiles><tr><th>n</th><th>min</th>";
    for (const char* name : kQuantiles) o << "<th>" << name << "</th>";
    o << "<th>max</th><th>mean</th></tr><tr><td class=n>" << count(number(scores, "count"))
      << "</td><td class=n>" << fmt(number(scores, "min")) << "</td>";
    for (const char* name : kQuantiles)
      o << "<td class=n>" << fmt(number(q, name, std::nan(""))) << "</td>";
    o << "<td class=n>" << fmt(number(scores, "max")) << "</td><td class=n>"
      << fmt(number(scores, "mean")) << "</td></tr></table>";
  }
  o << "</section>";
  return o.str();
}

std::string errors_section(const json& s) {
  std::ostringstream o;
  o << "<h2>Errors</h2>";
  const json& by_reason = field(s, "errors_by_reason");
  if (!by_reason.is_object() || by_reason.empty()) {
    o << "<p>No bad lines or rows.</p>";
    return o.str();
  }
  const json& examples = field(s, "error_examples");
  o << "<table class=errors><tr><th>reason</th><th>count</th><th>examples (manifest:line — "
       "message)</th></tr>";
  for (auto it = by_reason.begin(); it != by_reason.end(); ++it) {
    o << "<tr><td>" << html_escape(it.key()) << "</td><td class=n>" << cell(it.value())
      << "</td><td>";
    const json& list = field(examples, it.key().c_str());
    if (list.is_array()) {
      for (const auto& e : list) {
        o << "<div class=path>" << html_escape(text(e, "manifest")) << ':' << cell(field(e, "line"))
          << " — " << html_escape(text(e, "message"));
        if (field(e, "operator").is_string())
          o << " (" << html_escape(text(e, "operator")) << ", key " << html_escape(text(e, "key"))
            << ")";
        o << "</div>";
      }
    }
    o << "</td></tr>";
  }
  o << "</table><p class=note>The full list is errors.jsonl.</p>";
  return o.str();
}

std::string throughput_section(const json& s) {
  std::ostringstream o;
  o << "<h2>Throughput (this run)</h2>";
  const json& timing = field(s, "timing");
  o << "<p>" << fmt(number(timing, "this_run_seconds"), "%.1f") << " s, "
    << fmt(number(timing, "lines_per_second_this_run"), "%.1f") << " lines/s; merge "
    << fmt(number(timing, "merge_seconds"), "%.2f") << " s.</p>";
  const json& timeline = field(s, "timeline");
  const json& lines = field(timeline, "lines");
  const double interval = number(timeline, "interval_s", 1.0);
  if (lines.is_array() && !lines.empty() && interval > 0) {
    double max_rate = 1e-9;
    for (const auto& v : lines)
      if (v.is_number()) max_rate = std::max(max_rate, v.get<double>() / interval);
    const double width = 720, height = 160, left = 50, bottom = 24, top = 10;
    const double plot_w = width - left - 10, plot_h = height - bottom - top;
    const double bw = plot_w / lines.size();
    o << "<svg class=timeline width=" << width << " height=" << height << " viewBox=\"0 0 " << width
      << ' ' << height << "\" role=img aria-label=\"lines per second over time\">";
    for (size_t i = 0; i < lines.size(); ++i) {
      const double rate = lines[i].is_number() ? lines[i].get<double>() / interval : 0.0;
      const double h = plot_h * rate / max_rate;
      o << "<rect class=rate x=\"" << fmt(left + i * bw) << "\" y=\"" << fmt(top + plot_h - h)
        << "\" width=\"" << fmt(std::max(0.5, bw - 0.5)) << "\" height=\"" << fmt(h) << "\"><title>"
        << fmt(i * interval) << " s: " << fmt(rate) << " lines/s</title></rect>";
    }
    o << "<line class=axis x1=" << left << " y1=" << top + plot_h << " x2=" << left + plot_w
      << " y2=" << top + plot_h << " />";
    o << "<text x=" << left << " y=" << height - 6 << ">0 s</text><text x=" << left + plot_w
      << " y=" << height - 6 << " text-anchor=end>" << fmt(interval * lines.size()) << " s</text>";
    o << "<text x=" << left - 4 << " y=" << top + 8 << " text-anchor=end>" << fmt(max_rate)
      << "</text><text x=" << left - 4 << " y=" << top + plot_h << " text-anchor=end>0</text>";
    o << "</svg><p class=note>lines finished per second, in intervals of " << fmt(interval)
      << " s</p>";
  }
  const json& ranks = field(s, "ranks_this_run");
  if (ranks.is_object() && !ranks.empty()) {
    double max_rate = 1e-9;
    for (const auto& r : ranks) max_rate = std::max(max_rate, number(r, "lines_per_second"));
    o << "<table class=ranks><tr><th>rank</th><th>shards</th><th>lines</th><th>busy s</th>"
         "<th>lines/s while busy</th><th></th></tr>";
    for (auto it = ranks.begin(); it != ranks.end(); ++it) {
      const double rate = number(it.value(), "lines_per_second");
      o << "<tr><td>" << html_escape(it.key()) << "</td><td class=n>"
        << count(number(it.value(), "shards")) << "</td><td class=n>"
        << count(number(it.value(), "lines")) << "</td><td class=n>"
        << fmt(number(it.value(), "busy_seconds"), "%.2f") << "</td><td class=n>"
        << fmt(rate, "%.1f") << "</td><td><svg width=200 height=12><rect class=rate x=0 y=1 "
        << "height=10 width=\"" << fmt(200 * rate / max_rate) << "\" /></svg></td></tr>";
    }
    o << "</table>";
  }
  return o.str();
}

std::string models_section(const json& s) {
  std::ostringstream o;
  const json& models = field(s, "models");
  if (!models.is_array() || models.empty()) return "";
  o << "<h2>Models</h2><table class=models><tr><th>operator</th><th>model_name</th><th>resolved "
       "to</th><th>format</th><th>device</th><th>precision</th></tr>";
  for (const auto& m : models) {
    o << "<tr><td>" << html_escape(text(m, "operator")) << "</td><td class=path>"
      << html_escape(text(m, "model_name")) << "</td><td class=path>"
      << html_escape(text(m, "resolved_path"));
    if (field(m, "weights_file").is_string()) o << "<br>" << html_escape(text(m, "weights_file"));
    o << "</td><td>" << html_escape(text(m, "format")) << "</td><td>"
      << html_escape(text(m, "device")) << "</td><td>" << html_escape(text(m, "precision"))
      << "</td></tr>";
  }
  o << "</table><p class=note>as the workers loaded them: the device type and precision each "
       "operator ran in.</p>";
  return o.str();
}

}  // namespace

std::string html_escape(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_report(const nlohmann::json& s) {
  std::ostringstream o;
  const std::string run_dir = text(s, "run_dir");
  o << "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
    << "<meta name=viewport content=\"width=device-width\"><title>clipshard report "
    << html_escape(run_dir) << "</title><style>" << kStyle << "</style></head><body>\n";
  o << "<h1>clipshard run report</h1><p class=path>" << html_escape(run_dir) << "</p>\n";
  o << "<table class=counts><tr><th>lines</th><th>rows in</th><th>rows out</th><th>error "
       "records</th><th>blank lines</th><th>captions truncated</th><th>shards (this run / "
       "total)</th></tr><tr>";
  for (const char* key :
       {"lines", "rows_in", "rows_out", "error_records", "blank_lines", "captions_truncated"})
    o << "<td class=n>" << count(number(s, key)) << "</td>";
  const json& shards = field(s, "shards");
  o << "<td class=n>" << count(number(shards, "finished_this_run")) << " / "
    << count(number(shards, "total")) << "</td></tr></table>\n";
  const json& inputs = field(s, "inputs");
  if (inputs.is_array()) {
    o << "<p class=path>inputs: ";
    for (const auto& in : inputs)
      o << html_escape(text(in, "path")) << " (" << count(number(in, "lines")) << " lines) ";
    o << "</p>";
  }
  o << "<h2>Operators</h2>"
    << "<p class=note>Score distribution of the rows that reached each operator; bad rows "
       "(score 0 because of an error) are counted apart. Grey bars: scores the filter drops; red "
       "line: its threshold or top_fraction cutoff.</p>";
  const json& ops = field(s, "operators");
  if (ops.is_array())
    for (size_t i = 0; i < ops.size(); ++i) o << operator_section(ops[i], i) << '\n';
  o << errors_section(s) << '\n' << throughput_section(s) << '\n' << models_section(s) << '\n';
  o << "</body></html>\n";
  return o.str();
}

}  // namespace clipshard
