// ModelBank's descriptions of its models: what a rank reports per operator (operator_models), what
// the embedding cache records per table (table_description), the log line and the cache numerics
// suffix come from one resolution of each model and agree with each other.
#include "worker/model_bank.h"

#include <gtest/gtest.h>

#include "common/test_paths.h"

namespace clipshard {
namespace {

OperatorSpec tiny_operator(OperatorKind kind, const std::string& precision = "") {
  OperatorSpec op;
  op.kind = kind;
  op.model_name = (testing::fixtures() / "models" / "tiny" / "hf").string();
  op.device = "cpu";
  op.precision = precision;
  return op;
}

TEST(ModelBank, OperatorModelsAndTableDescriptionsAgree) {
  ModelBankOptions options;
  options.device = "cpu";
  options.precision = "fp32";
  // Evaluator and filter share the fp32 model; the bf16 operator loads a second one.
  const ModelBank bank(
      {tiny_operator(OperatorKind::kClipEvaluator), tiny_operator(OperatorKind::kClipFilter),
       tiny_operator(OperatorKind::kClipEvaluator, "bf16")},
      options);
  const auto ops = bank.operator_models();
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].op, "ImageCLIPEvaluator");
  EXPECT_EQ(ops[1].op, "ImageClipFilter");
  EXPECT_EQ(bank.image_spaces()[bank.image_space_of(0)].model,
            bank.image_spaces()[bank.image_space_of(1)].model);
  for (size_t op = 0; op < ops.size(); ++op) {
    SCOPED_TRACE(op);
    const OperatorModelInfo& info = ops[op];
    const int model = bank.image_spaces()[bank.image_space_of(op)].model;
    const TableDescription d = bank.table_description(model);
    EXPECT_EQ(d.model_name, info.model_name);
    EXPECT_EQ(d.model_path, info.weights_file);
    EXPECT_EQ(d.model_format, info.format);
    EXPECT_EQ(d.fingerprint, info.fingerprint);
    EXPECT_EQ(d.fingerprint, bank.model_id(model));
    EXPECT_EQ(d.precision, info.precision);
    EXPECT_EQ(d.normalized, 1);
    EXPECT_FALSE(info.weights_file.empty());
    EXPECT_FALSE(info.resolved_path.empty());
    EXPECT_EQ(info.device, "cpu");
    EXPECT_EQ(info.device_type, "cpu");
    EXPECT_EQ(bank.model_description(model),
              info.weights_file + " (" + info.format + ", cpu, " + info.precision + ")");
  }
  EXPECT_EQ(ops[0].precision, "fp32");
  EXPECT_EQ(ops[2].precision, "bf16");
  const int fp32_model = bank.image_spaces()[bank.image_space_of(0)].model;
  const int bf16_model = bank.image_spaces()[bank.image_space_of(2)].model;
  EXPECT_NE(fp32_model, bf16_model);
  EXPECT_EQ(bank.cache_numerics_suffix(fp32_model), "");
  EXPECT_EQ(bank.cache_numerics_suffix(bf16_model), "@bf16-cpu");
}

}  // namespace
}  // namespace clipshard
