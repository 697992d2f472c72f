#include "models/text/bpe_model.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>

#include "models/text/unicode_text.h"

namespace clipshard::text {
namespace {

constexpr std::size_t kOpenAiMergeCount = 49152 - 256 - 2;  // merges[1:49152-256-2+1]
constexpr std::size_t kCacheShards = 64;
constexpr std::size_t kCacheEntriesPerShard = 4096;
constexpr std::size_t kMaxCachedWordBytes = 128;
constexpr std::size_t kReferenceLoopMaxSymbols = 64;
constexpr std::size_t kBucketQueueMinSymbols = 1 << 15;

// GPT-2's bytes_to_unicode, in its dict order: (byte, code point) pairs.
std::vector<std::pair<int, char32_t>> bytes_to_unicode() {
  std::vector<std::pair<int, char32_t>> out;
  std::array<bool, 256> printable{};
  for (int b = 0; b < 256; ++b) {
    printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable[b]) out.emplace_back(b, static_cast<char32_t>(b));
  }
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (!printable[b]) out.emplace_back(b, static_cast<char32_t>(256 + n++));
  }
  return out;
}

std::uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
         static_cast<std::uint32_t>(b);
}

std::string read_gzip(const std::filesystem::path& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw VocabularyError("cannot open BPE vocabulary " + path.string() +
                          " (give the path of bpe_simple_vocab_16e6.txt.gz)");
  }
  std::string data;
  std::array<char, 1 << 16> buf;
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      throw VocabularyError("cannot read BPE vocabulary " + path.string() + ": " + msg);
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<std::size_t>(n));
  }
  gzclose(f);
  return data;
}

// The gzip stream `gz` (the bundled vocabulary embedded in the binary), decompressed.
std::string gunzip(std::string_view gz, const std::string& name) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {  // 16+: gzip header, not zlib
    throw VocabularyError("cannot decompress BPE vocabulary " + name + ": inflateInit2 failed");
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string data;
  std::array<char, 1 << 16> buf;
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf.data());
    z.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&z, Z_NO_FLUSH);
    data.append(buf.data(), buf.size() - z.avail_out);
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) {
    throw VocabularyError("cannot decompress BPE vocabulary " + name + " (zlib error " +
                          std::to_string(rc) + ": not a complete gzip stream)");
  }
  return data;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw VocabularyError("cannot open tokenizer file " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Splits on ASCII whitespace (str.split() on these lines, whose symbols hold no whitespace).
std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) parts.push_back(line.substr(i, j - i));
    i = j;
  }
  return parts;
}

// A word being merged, for merge_heap and merge_buckets: its symbols as a doubly linked list over
// their positions. A merge keeps the left node and retires the right one, so node indices keep
// the word order (equal ranks merge left to right by index).
struct SymbolChain {
  std::vector<int32_t> sym, prev, next;  // next/prev: -1 at the ends
  std::vector<char> alive;

  explicit SymbolChain(const std::vector<int32_t>& symbols)
      : sym(symbols), prev(symbols.size()), next(symbols.size()), alive(symbols.size(), 1) {
    const std::size_t n = symbols.size();
    for (std::size_t i = 0; i < n; ++i) {
      prev[i] = static_cast<int32_t>(i) - 1;
      next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
    }
  }
  // Node p and the node after it become the one symbol `id` (at p).
  void merge(int32_t p, int32_t id) {
    const int32_t q = next[p];
    sym[p] = id;
    alive[q] = 0;
    next[p] = next[q];
    if (next[q] >= 0) prev[next[q]] = p;
  }
  // The symbols, in word order.
  std::vector<int32_t> symbols() const {
    std::vector<int32_t> out;
    for (int32_t p = 0; p >= 0; p = next[p]) out.push_back(sym[p]);
    return out;
  }
};

}  // namespace

struct BpeModel::Impl {
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  std::unordered_map<std::string, int32_t> encoder;
  std::unordered_map<std::uint64_t, Merge> merges;
  std::array<int32_t, 256> byte_id{};
  std::array<int32_t, 256> byte_end_id{};
  std::size_t merge_count = 0;

  struct CacheShard {
    mutable std::shared_mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  mutable std::array<CacheShard, kCacheShards> cache;

  const Merge* find(int32_t a, int32_t b) const {
    auto it = merges.find(pair_key(a, b));
    return it == merges.end() ? nullptr : &it->second;
  }

  int32_t id_of(const std::string& token, const std::string& file) const {
    auto it = encoder.find(token);
    if (it == encoder.end()) {
      throw VocabularyError("tokenizer file " + file + ": the symbol '" + token +
                            "' of a merge is not in the vocabulary");
    }
    return it->second;
  }

  // Byte symbols, then the merges (a, b) in rank order; the encoder must be complete.
  void build(const std::vector<std::pair<std::string, std::string>>& merge_list,
             const std::string& file) {
    for (const auto& [b, cp] : bytes_to_unicode()) {
      std::string sym;
      append_utf8(sym, cp);
      byte_id[b] = id_of(sym, file);
      byte_end_id[b] = id_of(sym + "</w>", file);
    }
    merges.reserve(merge_list.size() * 2);
    for (std::size_t r = 0; r < merge_list.size(); ++r) {
      const auto& [a, b] = merge_list[r];
      // dict(zip(merges, range(...))): a repeated pair keeps its last rank.
      merges[pair_key(id_of(a, file), id_of(b, file))] =
          Merge{static_cast<int32_t>(r), id_of(a + b, file)};
    }
    merge_count = merge_list.size();
  }
};

BpeModel::BpeModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeModel::~BpeModel() = default;

std::shared_ptr<const BpeModel> BpeModel::from_bpe_gz(const std::filesystem::path& gz) {
  return from_bpe_text(read_gzip(gz), gz.string());
}

std::shared_ptr<const BpeModel> BpeModel::from_bpe_gz_bytes(std::string_view gz,
                                                            const std::string& name) {
  return from_bpe_text(gunzip(gz, name), name);
}

std::shared_ptr<const BpeModel> BpeModel::from_bpe_text(const std::string& data,
                                                        const std::string& name) {
  // lines = data.split('\n'); merges = lines[1 : 48895]
  std::vector<std::pair<std::string, std::string>> merge_list;
  merge_list.reserve(kOpenAiMergeCount);
  std::size_t pos = data.find('\n');
  while (pos != std::string::npos && merge_list.size() < kOpenAiMergeCount) {
    const std::size_t start = pos + 1;
    std::size_t end = data.find('\n', start);
    const std::string_view line(data.data() + start,
                                (end == std::string::npos ? data.size() : end) - start);
    const auto parts = split_ws(line);
    if (parts.size() != 2) {
      throw VocabularyError("BPE vocabulary " + name + ": line " +
                            std::to_string(merge_list.size() + 2) +
                            " is not a merge 'a b' (is this bpe_simple_vocab_16e6.txt.gz?)");
    }
    merge_list.emplace_back(std::string(parts[0]), std::string(parts[1]));
    pos = end;
  }
  if (merge_list.size() != kOpenAiMergeCount) {
    throw VocabularyError("BPE vocabulary " + name + " has " + std::to_string(merge_list.size()) +
                          " merges, expected " + std::to_string(kOpenAiMergeCount));
  }
  auto impl = std::make_unique<Impl>();
  std::vector<std::string> vocab;
  vocab.reserve(49408);
  for (const auto& [b, cp] : bytes_to_unicode()) {
    std::string sym;
    append_utf8(sym, cp);
    vocab.push_back(sym);
  }
  for (std::size_t i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");
  for (const auto& [a, b] : merge_list) vocab.push_back(a + b);
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");
  for (std::size_t i = 0; i < vocab.size(); ++i) {
    impl->encoder[vocab[i]] = static_cast<int32_t>(i);  // dict(zip(vocab, range)): last wins
  }
  impl->build(merge_list, name);
  return std::shared_ptr<const BpeModel>(new BpeModel(std::move(impl)));
}

std::shared_ptr<const BpeModel> BpeModel::from_hf_files(const std::filesystem::path& vocab_json,
                                                        const std::filesystem::path& merges_txt) {
  auto impl = std::make_unique<Impl>();
  try {
    const nlohmann::json vocab = nlohmann::json::parse(read_file(vocab_json));
    if (!vocab.is_object()) throw VocabularyError("not a JSON object");
    for (const auto& [token, id] : vocab.items()) {
      impl->encoder[token] = id.get<int32_t>();
    }
  } catch (const VocabularyError& e) {
    throw VocabularyError("tokenizer vocabulary " + vocab_json.string() + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw VocabularyError("tokenizer vocabulary " + vocab_json.string() +
                          " is not a {token: id} JSON object: " + e.what());
  }
  const std::string data = read_file(merges_txt);
  std::vector<std::pair<std::string, std::string>> merge_list;
  std::size_t start = 0, line_no = 0;
  while (start < data.size()) {
    std::size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string_view line(data.data() + start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.substr(0, 8) == "#version") continue;
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) {
      throw VocabularyError("tokenizer merges " + merges_txt.string() + ": line " +
                            std::to_string(line_no) + " is not 'a b'");
    }
    merge_list.emplace_back(std::string(line.substr(0, space)),
                            std::string(line.substr(space + 1)));
  }
  impl->build(merge_list, merges_txt.string());
  return std::shared_ptr<const BpeModel>(new BpeModel(std::move(impl)));
}

int32_t BpeModel::token_id(std::string_view token) const {
  auto it = impl_->encoder.find(std::string(token));
  return it == impl_->encoder.end() ? -1 : it->second;
}
std::size_t BpeModel::vocab_size() const { return impl_->encoder.size(); }
std::size_t BpeModel::merge_count() const { return impl_->merge_count; }

std::vector<int32_t> BpeModel::initial_symbols(std::string_view bytes, bool word_end) const {
  std::vector<int32_t> symbols(bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    symbols[i] = word_end && i + 1 == bytes.size() ? impl_->byte_end_id[b] : impl_->byte_id[b];
  }
  return symbols;
}

std::vector<int32_t> BpeModel::merge_reference(std::vector<int32_t> word) const {
  std::vector<int32_t> next;
  while (word.size() > 1) {
    const Impl::Merge* best = nullptr;
    int32_t first = 0, second = 0;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      const Impl::Merge* m = impl_->find(word[i], word[i + 1]);
      if (m != nullptr && (best == nullptr || m->rank < best->rank)) {
        best = m;
        first = word[i];
        second = word[i + 1];
      }
    }
    if (best == nullptr) break;
    next.clear();
    for (std::size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        next.push_back(best->id);
        i += 2;
      } else {
        next.push_back(word[i]);
        ++i;
      }
    }
    word.swap(next);
  }
  return word;
}

std::vector<int32_t> BpeModel::merge_heap(const std::vector<int32_t>& symbols) const {
  const std::size_t n = symbols.size();
  if (n < 2) return symbols;
  if (n > kBucketQueueMinSymbols) return merge_buckets(symbols);
  SymbolChain chain(symbols);
  using Candidate = std::pair<int32_t, int32_t>;  // (rank, left node); a rank identifies its pair
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto rank_at = [&](int32_t p) -> const Impl::Merge* {
    if (p < 0 || chain.next[p] < 0) return nullptr;
    return impl_->find(chain.sym[p], chain.sym[chain.next[p]]);
  };
  auto push = [&](int32_t p) {
    if (const Impl::Merge* m = rank_at(p)) heap.emplace(m->rank, p);
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  std::vector<int32_t> touched;
  while (!heap.empty()) {
    // One round of the official loop: every occurrence of the lowest-ranked pair, left to right
    // (equal ranks pop by position), before any pair these merges create.
    const int32_t rank = heap.top().first;
    touched.clear();
    while (!heap.empty() && heap.top().first == rank) {
      const int32_t p = heap.top().second;
      heap.pop();
      if (!chain.alive[p]) continue;
      const Impl::Merge* m = rank_at(p);
      if (m == nullptr || m->rank != rank) continue;
      chain.merge(p, m->id);
      touched.push_back(p);
    }
    for (int32_t p : touched) {
      if (!chain.alive[p]) continue;
      push(chain.prev[p]);
      push(p);
    }
  }
  return chain.symbols();
}

std::vector<int32_t> BpeModel::merge_buckets(const std::vector<int32_t>& symbols) const {
  const std::size_t n = symbols.size();
  if (n < 2) return symbols;
  SymbolChain chain(symbols);
  // A bucket queue over ranks: bucket r holds the left nodes of pairs that had rank r when pushed
  // (stale entries are skipped: a pair's rank identifies the pair).
  std::vector<std::vector<int32_t>> buckets(impl_->merge_count);
  std::size_t lowest = buckets.size();
  auto rank_at = [&](int32_t p) -> const Impl::Merge* {
    if (p < 0 || chain.next[p] < 0) return nullptr;
    return impl_->find(chain.sym[p], chain.sym[chain.next[p]]);
  };
  auto push = [&](int32_t p) {
    if (const Impl::Merge* m = rank_at(p)) {
      const auto r = static_cast<std::size_t>(m->rank);
      buckets[r].push_back(p);
      lowest = std::min(lowest, r);
    }
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  std::vector<int32_t> round, touched;
  while (true) {
    while (lowest < buckets.size() && buckets[lowest].empty()) ++lowest;
    if (lowest >= buckets.size()) break;
    // One round of the official loop: every occurrence of the lowest-ranked pair, left to right,
    // before any pair these merges create (node indices follow the word order).
    const auto rank = static_cast<int32_t>(lowest);
    round.swap(buckets[lowest]);
    buckets[lowest].clear();
    if (!std::is_sorted(round.begin(), round.end())) std::sort(round.begin(), round.end());
    touched.clear();
    int32_t last = -1;
    for (int32_t p : round) {
      if (p == last || !chain.alive[p]) continue;
      last = p;
      const Impl::Merge* m = rank_at(p);
      if (m == nullptr || m->rank != rank) continue;
      chain.merge(p, m->id);
      touched.push_back(p);
    }
    round.clear();
    for (int32_t p : touched) {
      if (!chain.alive[p]) continue;
      push(chain.prev[p]);
      push(p);
    }
  }
  return chain.symbols();
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>& out, bool word_end) const {
  if (bytes.empty()) return;
  if (!word_end) {
    const std::vector<int32_t> merged = merge_heap(initial_symbols(bytes, false));
    out.insert(out.end(), merged.begin(), merged.end());
    return;
  }
  if (bytes.size() == 1) {
    out.push_back(impl_->byte_end_id[static_cast<unsigned char>(bytes[0])]);
    return;
  }
  const bool cacheable = bytes.size() <= kMaxCachedWordBytes;
  Impl::CacheShard* shard = nullptr;
  std::string key;
  if (cacheable) {
    key.assign(bytes);
    shard = &impl_->cache[std::hash<std::string>{}(key) % kCacheShards];
    std::shared_lock<std::shared_mutex> lock(shard->mutex);
    auto it = shard->words.find(key);
    if (it != shard->words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols = initial_symbols(bytes);
  std::vector<int32_t> merged = symbols.size() <= kReferenceLoopMaxSymbols
                                    ? merge_reference(std::move(symbols))
                                    : merge_heap(symbols);
  out.insert(out.end(), merged.begin(), merged.end());
  if (cacheable) {
    std::unique_lock<std::shared_mutex> lock(shard->mutex);
    if (shard->words.size() >= kCacheEntriesPerShard) shard->words.clear();
    shard->words.emplace(std::move(key), std::move(merged));
  }
}

}  // namespace clipshard::text
