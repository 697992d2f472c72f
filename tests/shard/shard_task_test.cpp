// ShardTask (shard/shard_task.h): the task of a plan's shard, and its kAssign encoding round trip.
#include "shard/shard_task.h"

#include <gtest/gtest.h>

namespace clipshard {
namespace {

ShardPlan two_inputs() {
  ShardPlan plan;
  plan.lines_per_shard = 10;
  ManifestInfo a;
  a.path = "/data/a.jsonl";
  a.url = "a.jsonl";
  a.lines = 25;
  ManifestInfo b;
  b.path = "/data/b.tar";
  b.url = "b.tar";
  b.kind = InputKind::kTar;
  b.lines = 7;
  plan.manifests = {a, b};
  plan.shards = {{0, 0, 1, 10, 0, 100},
                 {1, 0, 11, 10, 100, 200},
                 {2, 0, 21, 5, 200, 250},
                 {3, 1, 1, 7, 0, 9216}};
  return plan;
}

TEST(ShardTask, MadeFromThePlan) {
  const ShardPlan plan = two_inputs();
  const ShardTask first = make_shard_task(plan, 1);
  EXPECT_EQ(first.manifest, "/data/a.jsonl");
  EXPECT_EQ(first.kind, InputKind::kManifest);
  EXPECT_EQ(first.global_base, 0);
  EXPECT_EQ(first.shard.first_line, 11);
  const ShardTask tar = make_shard_task(plan, 3);
  EXPECT_EQ(tar.manifest, "/data/b.tar");
  EXPECT_EQ(tar.kind, InputKind::kTar);
  EXPECT_EQ(tar.url, "b.tar");
  EXPECT_EQ(tar.global_base, 25);  // the lines of the manifest before it
  EXPECT_THROW(make_shard_task(plan, 4), std::out_of_range);
}

TEST(ShardTask, EncodingRoundTrips) {
  const ShardPlan plan = two_inputs();
  for (int64_t id = 0; id < 4; ++id) {
    const ShardTask t = make_shard_task(plan, id);
    const ShardTask back = decode_shard_task(encode_shard_task(t));
    EXPECT_EQ(back.shard.id, t.shard.id);
    EXPECT_EQ(back.shard.manifest, t.shard.manifest);
    EXPECT_EQ(back.shard.first_line, t.shard.first_line);
    EXPECT_EQ(back.shard.line_count, t.shard.line_count);
    EXPECT_EQ(back.shard.byte_begin, t.shard.byte_begin);
    EXPECT_EQ(back.shard.byte_end, t.shard.byte_end);
    EXPECT_EQ(back.manifest, t.manifest);
    EXPECT_EQ(back.kind, t.kind);
    EXPECT_EQ(back.url, t.url);
    EXPECT_EQ(back.global_base, t.global_base);
  }
  EXPECT_ANY_THROW(decode_shard_task("{\"id\": 1}"));
}

}  // namespace
}  // namespace clipshard
