#include "shard/input_expansion.h"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

namespace clipshard {

namespace {

constexpr int64_t kMaxRangeItems = 10'000'000;

// Index of the '}' closing the '{' at `open`, or npos.
size_t matching_brace(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i;
  }
  return std::string::npos;
}

// The comma-separated alternatives of a group's body, split at top-level commas only.
std::vector<std::string> split_top_level(const std::string& body) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '{') ++depth;
    if (body[i] == '}') --depth;
    if (body[i] == ',' && depth == 0) {
      parts.push_back(body.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(body.substr(start));
  return parts;
}

bool is_integer(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size() || s.size() - i > 18) return false;
  for (; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

bool has_leading_zero(const std::string& s) {
  const size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  return s.size() - i > 1 && s[i] == '0';
}

// `{M..N}` as a list of numbers, or nothing when `body` is not an integer range.
std::optional<std::vector<std::string>> integer_range(const std::string& body) {
  const size_t dots = body.find("..");
  if (dots == std::string::npos) return std::nullopt;
  const std::string a = body.substr(0, dots), b = body.substr(dots + 2);
  if (!is_integer(a) || !is_integer(b)) return std::nullopt;
  const int64_t from = std::stoll(a), to = std::stoll(b);
  const int64_t count = (from <= to ? to - from : from - to) + 1;
  if (count > kMaxRangeItems)
    throw std::runtime_error("brace range {" + body + "} has more than 10 million items");
  const size_t width =
      (has_leading_zero(a) || has_leading_zero(b)) ? std::max(a.size(), b.size()) : 0;
  std::vector<std::string> items;
  items.reserve(static_cast<size_t>(count));
  const int64_t step = from <= to ? 1 : -1;
  for (int64_t v = from;; v += step) {
    std::string digits = std::to_string(v < 0 ? -v : v);
    const size_t sign = v < 0 ? 1 : 0;
    if (digits.size() + sign < width) digits.insert(0, width - digits.size() - sign, '0');
    items.push_back((v < 0 ? "-" : "") + digits);
    if (v == to) break;
  }
  return items;
}

bool has_glob_characters(const std::string& s) {
  return s.find_first_of("*?[") != std::string::npos;
}

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern) {
  // Find the first group that expands; literal "{...}" groups are skipped over.
  size_t search = 0;
  while (true) {
    const size_t open = pattern.find('{', search);
    if (open == std::string::npos) return {pattern};
    const size_t close = matching_brace(pattern, open);
    if (close == std::string::npos) return {pattern};
    const std::string body = pattern.substr(open + 1, close - open - 1);
    std::vector<std::string> alternatives;
    if (auto range = integer_range(body)) {
      alternatives = std::move(*range);
    } else {
      alternatives = split_top_level(body);
      if (alternatives.size() < 2) {  // "{x}" is literal text, as in bash
        search = open + 1;
        continue;
      }
    }
    const std::string head = pattern.substr(0, open);
    const std::vector<std::string> tails = expand_braces(pattern.substr(close + 1));
    std::vector<std::string> result;
    for (const auto& alternative : alternatives)
      for (const auto& middle : expand_braces(alternative))
        for (const auto& tail : tails) result.push_back(head + middle + tail);
    return result;
  }
}

InputKind input_kind(const std::filesystem::path& path) {
  return path.extension() == ".tar" ? InputKind::kTar : InputKind::kManifest;
}

std::vector<InputFile> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<InputFile> result;
  std::set<std::filesystem::path> seen;
  auto add = [&](const std::string& given, const std::string& pattern) {
    auto abs = std::filesystem::absolute(given).lexically_normal();
    const std::string from = given == pattern ? "" : " (from " + pattern + ")";
    if (!std::filesystem::exists(abs))
      throw std::runtime_error("input " + given + from + " does not exist");
    if (!std::filesystem::is_regular_file(abs))
      throw std::runtime_error("input " + abs.string() + from + " is not a readable file");
    if (seen.insert(abs).second) result.push_back({abs, given, input_kind(abs)});
  };
  for (const auto& input : inputs) {
    for (const auto& expanded : expand_braces(input)) {
      if (!has_glob_characters(expanded)) {
        add(expanded, input);
        continue;
      }
      glob_t g{};
      const int rc = ::glob(expanded.c_str(), 0, nullptr, &g);
      std::unique_ptr<glob_t, void (*)(glob_t*)> guard(&g, globfree);
      if (rc != 0 || g.gl_pathc == 0)
        throw std::runtime_error("input pattern " + expanded +
                                 (expanded == input ? "" : " (from " + input + ")") +
                                 " matches no file");
      std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + g.gl_pathc);
      std::sort(matches.begin(), matches.end());
      for (const auto& m : matches) add(m, input);
    }
  }
  return result;
}

}  // namespace clipshard
