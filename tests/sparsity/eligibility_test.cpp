#include <doctest/doctest.h>

#include "quench/sparsity/eligibility.hpp"

namespace sp = quench::sparsity;

TEST_CASE("weight_axes_of: the reduction axis of each operator's weight") {
  auto conv = sp::weight_axes_of(sp::weight_op::conv, {64, 32, 3, 3});
  CHECK(conv.in_axis == 1);
  CHECK(conv.in_channels == 32);
  CHECK(conv.out_channels == 64);
  auto deconv = sp::weight_axes_of(sp::weight_op::conv_transpose, {64, 32, 2, 2});
  CHECK(deconv.in_axis == 0);
  CHECK(deconv.out_axis == 1);
  CHECK(sp::weight_axes_of(sp::weight_op::gemm, {10, 64}, true).in_axis == 1);
  CHECK(sp::weight_axes_of(sp::weight_op::gemm, {64, 10}, false).in_axis == 0);
  CHECK(sp::weight_axes_of(sp::weight_op::matmul, {64, 10}).in_channels == 64);
  CHECK_THROWS_AS(sp::weight_axes_of(sp::weight_op::matmul, {2, 64, 10}), quench::error);
  CHECK_THROWS_AS(sp::weight_axes_of(sp::weight_op::conv, {64, 10}), quench::error);
  CHECK(sp::weight_op_from_name("ConvTranspose") == sp::weight_op::conv_transpose);
  CHECK_THROWS_AS(sp::weight_op_from_name("Relu"), quench::error);
}

TEST_CASE("ineligibility: ASP's K % 8 and C % 16, and C % M") {
  const sp::nm_pattern p24{};
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::conv, {64, 32, 3, 3}), p24).empty());
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::conv, {64, 3, 7, 7}), p24) ==
        "input channels 3 (axis 1) not a multiple of 16");
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::gemm, {10, 64}, true), p24) ==
        "output channels 10 (axis 0) not a multiple of 8");
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::conv, {32, 1, 3, 3}), p24) ==
        "input channels 1 (axis 1) not a multiple of 16");  // depthwise
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::matmul, {16, 8}), {4, 32}) ==
        "input channels 16 (axis 0) not a multiple of 32 (4:32)");
  sp::eligibility_rules loose{0, 0};
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::gemm, {10, 12}, true), p24, loose).empty());
  CHECK(!sp::ineligibility(sp::weight_axes_of(sp::weight_op::gemm, {10, 10}, true), p24, loose).empty());
  // ConvTranspose counts input channels per group.
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::conv_transpose, {64, 8, 2, 2}), p24, {}, 2,
                          sp::weight_op::conv_transpose)
            .empty());
  CHECK(sp::ineligibility(sp::weight_axes_of(sp::weight_op::conv_transpose, {64, 8, 2, 2}), p24, {}, 8,
                          sp::weight_op::conv_transpose) == "input channels 8 (axis 0) not a multiple of 16");
}
