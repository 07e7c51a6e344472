// Gemm, MatMul, MatMulInteger, QLinearMatMul and Einsum: hand-checked cases, broadcasting
// against a direct loop, thread-count independence, and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "quench/runtime/executor.hpp"

namespace rt = quench::runtime;
using quench::attribute;
using quench::tensor;

namespace {

/// One node in a model of its own, run by the executor.
struct node_runner {
  explicit node_runner(std::string op_type, std::int64_t version = 17) : op(std::move(op_type)), opset(version) {}

  std::string op;
  std::int64_t opset;
  std::map<std::string, std::int64_t> int_attrs;
  std::map<std::string, float> float_attrs;
  std::map<std::string, std::string> string_attrs;

  quench::model build(const std::vector<const tensor*>& inputs) const {
    quench::model m;
    m.set_opset("", opset);
    auto& g = m.main_graph();
    std::vector<quench::value*> ins;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      ins.push_back(inputs[i] ? &g.add_input("in" + std::to_string(i), static_cast<std::int32_t>(inputs[i]->dtype())) : nullptr);
    auto& n = g.add_node(op, ins, {"out0"}, "n0");
    for (const auto& [k, v] : int_attrs) n.set_attribute(attribute::make_int(k, v));
    for (const auto& [k, v] : float_attrs) n.set_attribute(attribute::make_float(k, v));
    for (const auto& [k, v] : string_attrs) n.set_attribute(attribute::make_string(k, v));
    g.add_output(*n.output(0));
    return m;
  }
  tensor run(const std::vector<const tensor*>& inputs, int threads = 1) const {
    const quench::model m = build(inputs);
    rt::executor ex(m, rt::executor_options{threads, nullptr});
    std::unordered_map<std::string, const tensor*> feed;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i]) feed["in" + std::to_string(i)] = inputs[i];
    return std::move(ex.run(feed)[0]);
  }
};

template <class T>
tensor random_tensor(quench::shape s, std::mt19937& rng) {
  tensor t(quench::dtype_of_v<T>, std::move(s));
  std::uniform_real_distribution<double> d(-1, 1);
  for (auto& v : t.view<T>()) v = static_cast<T>(d(rng));
  return t;
}

template <class T>
std::vector<T> values(const tensor& t) {
  return std::vector<T>(t.view<T>().begin(), t.view<T>().end());
}

bool close(double got, double want, double tol = 1e-5) { return std::fabs(got - want) <= tol + tol * std::fabs(want); }

}  // namespace

TEST_CASE("MatMul: 2-D, 1-D operands and batched broadcasting") {
  const tensor a = tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  const tensor b = tensor::from<float>({3, 2}, {7, 8, 9, 10, 11, 12});
  node_runner mm{"MatMul"};
  tensor y = mm.run({&a, &b});
  CHECK(y.shape() == quench::shape{2, 2});
  CHECK(values<float>(y) == std::vector<float>{58, 64, 139, 154});

  const tensor v = tensor::from<float>({3}, {1, 0, -1});
  y = mm.run({&v, &b});  // [3] x [3, 2] -> [2]
  CHECK(y.shape() == quench::shape{2});
  CHECK(values<float>(y) == std::vector<float>{-4, -4});
  y = mm.run({&a, &v});  // [2, 3] x [3] -> [2]
  CHECK(y.shape() == quench::shape{2});
  CHECK(values<float>(y) == std::vector<float>{-2, -2});
  y = mm.run({&v, &v});  // [3] x [3] -> scalar
  CHECK(y.shape() == quench::shape{});
  CHECK(values<float>(y) == std::vector<float>{2});

  std::mt19937 rng(5);
  const std::vector<std::pair<quench::shape, quench::shape>> shapes = {
      {{2, 1, 4, 3}, {5, 3, 2}}, {{4, 3}, {2, 3, 5}}, {{3, 2, 4, 3}, {3}}, {{6}, {2, 6, 4}}, {{1, 5, 2}, {3, 2, 7}}};
  for (const auto& [as, bs] : shapes) {
    CAPTURE(quench::to_string(as));
    const tensor x = random_tensor<double>(as, rng);
    const tensor z = random_tensor<double>(bs, rng);
    const tensor got = mm.run({&x, &z});
    // numpy.matmul by hand: promote, broadcast the batch, multiply, drop promoted axes.
    std::vector<std::int64_t> ad = as.dims(), bd = bs.dims();
    const bool av = ad.size() == 1, bv = bd.size() == 1;
    if (av) ad.insert(ad.begin(), 1);
    if (bv) bd.push_back(1);
    const std::size_t rank = std::max(ad.size(), bd.size());
    while (ad.size() < rank) ad.insert(ad.begin(), 1);
    while (bd.size() < rank) bd.insert(bd.begin(), 1);
    const std::int64_t m = ad[rank - 2], k = ad[rank - 1], n = bd[rank - 1];
    std::vector<std::int64_t> batch(rank - 2);
    std::int64_t count = 1;
    for (std::size_t i = 0; i + 2 < rank; ++i) count *= (batch[i] = std::max(ad[i], bd[i]));
    REQUIRE(got.size() == static_cast<std::size_t>(count * m * n));
    const auto xv = x.view<double>();
    const auto zv = z.view<double>();
    const auto gv = got.view<double>();
    for (std::int64_t bi = 0; bi < count; ++bi) {
      std::int64_t rest = bi, ao = 0, bo = 0, as_ = 1, bs_ = 1;
      for (std::size_t d = rank - 2; d-- > 0;) {
        const std::int64_t i = rest % batch[d];
        rest /= batch[d];
        ao += (ad[d] == 1 ? 0 : i) * as_;
        bo += (bd[d] == 1 ? 0 : i) * bs_;
        as_ *= ad[d];
        bs_ *= bd[d];
      }
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (std::int64_t q = 0; q < k; ++q)
            acc += xv[static_cast<std::size_t>(ao * m * k + i * k + q)] * zv[static_cast<std::size_t>(bo * k * n + q * n + j)];
          CHECK(close(gv[static_cast<std::size_t>((bi * m + i) * n + j)], acc, 1e-12));
        }
    }
  }

  const tensor i64a = tensor::from<std::int64_t>({2, 2}, {1, 2, 3, 4});
  y = mm.run({&i64a, &i64a});
  CHECK(values<std::int64_t>(y) == std::vector<std::int64_t>{7, 10, 15, 22});
}

TEST_CASE("MatMul and Gemm are bit-identical for any thread count") {
  std::mt19937 rng(9);
  const tensor a = random_tensor<float>({3, 400, 300}, rng);
  const tensor b = random_tensor<float>({300, 900}, rng);
  const tensor bb = random_tensor<float>({3, 300, 500}, rng);
  node_runner mm{"MatMul"};
  for (const tensor* rhs : {&b, &bb}) {
    const tensor one = mm.run({&a, rhs}, 1);
    for (int threads : {2, 5}) {
      const tensor many = mm.run({&a, rhs}, threads);
      CHECK(std::memcmp(one.bytes(), many.bytes(), one.nbytes()) == 0);
    }
  }
  const tensor ga = random_tensor<float>({700, 300}, rng);
  const tensor gb = random_tensor<float>({900, 300}, rng);
  const tensor gc = random_tensor<float>({900}, rng);
  node_runner gemm{"Gemm"};
  gemm.int_attrs["transB"] = 1;
  gemm.float_attrs["alpha"] = 0.5f;
  const tensor one = gemm.run({&ga, &gb, &gc}, 1);
  const tensor many = gemm.run({&ga, &gb, &gc}, 4);
  CHECK(std::memcmp(one.bytes(), many.bytes(), one.nbytes()) == 0);
}

TEST_CASE("Gemm: transposes, alpha, beta and every C broadcast") {
  const tensor a = tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6});        // A
  const tensor at = tensor::from<float>({3, 2}, {1, 4, 2, 5, 3, 6});       // A^T
  const tensor b = tensor::from<float>({3, 2}, {7, 8, 9, 10, 11, 12});     // B
  const tensor bt = tensor::from<float>({2, 3}, {7, 9, 11, 8, 10, 12});    // B^T
  const std::vector<float> ab{58, 64, 139, 154};
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      node_runner g{"Gemm"};
      g.int_attrs["transA"] = ta;
      g.int_attrs["transB"] = tb;
      CHECK(values<float>(g.run({ta ? &at : &a, tb ? &bt : &b})) == ab);
    }
  node_runner g{"Gemm"};
  g.float_attrs["alpha"] = 0.5f;
  g.float_attrs["beta"] = 2.f;
  const tensor scalar = tensor::from<float>({}, {1});
  const tensor row = tensor::from<float>({2}, {1, 2});
  const tensor col = tensor::from<float>({2, 1}, {1, 2});
  const tensor full = tensor::from<float>({2, 2}, {1, 2, 3, 4});
  CHECK(values<float>(g.run({&a, &b, &scalar})) == std::vector<float>{31, 34, 71.5f, 79});
  CHECK(values<float>(g.run({&a, &b, &row})) == std::vector<float>{31, 36, 71.5f, 81});
  CHECK(values<float>(g.run({&a, &b, &col})) == std::vector<float>{31, 34, 73.5f, 81});
  CHECK(values<float>(g.run({&a, &b, &full})) == std::vector<float>{31, 36, 75.5f, 85});

  // Before opset 7, C broadcasts only with broadcast=1.
  node_runner old{"Gemm", 6};
  CHECK_THROWS_WITH(old.run({&a, &b, &row}), doctest::Contains("(equal: broadcast=0)"));
  CHECK(values<float>(old.run({&a, &b, &full})) == std::vector<float>{59, 66, 142, 158});
  old.int_attrs["broadcast"] = 1;
  CHECK(values<float>(old.run({&a, &b, &row})) == std::vector<float>{59, 66, 140, 156});

  const tensor c_bad = tensor::from<float>({3}, {1, 2, 3});
  CHECK_THROWS_WITH(g.run({&a, &b, &c_bad}), doctest::Contains("C broadcastable to [2, 2]"));
  CHECK_THROWS_WITH(g.run({&a, &a}), doctest::Contains("inner dimensions to agree"));
  const tensor a3(quench::dtype::float32, {1, 2, 3});
  CHECK_THROWS_WITH(g.run({&a3, &b}), doctest::Contains("expects 2-D A and B"));
}

TEST_CASE("MatMul errors name the node") {
  const tensor a(quench::dtype::float32, {2, 3});
  const tensor b(quench::dtype::float32, {4, 2});
  node_runner mm{"MatMul"};
  CHECK_THROWS_WITH(mm.run({&a, &b}), doctest::Contains("node 'n0' (MatMul)"));
  CHECK_THROWS_WITH(mm.run({&a, &b}), doctest::Contains("inner dimensions to agree"));
  const tensor x(quench::dtype::float32, {2, 2, 3});
  const tensor y(quench::dtype::float32, {3, 3, 2});
  CHECK_THROWS_WITH(mm.run({&x, &y}), doctest::Contains("broadcastable shapes"));
  const tensor d(quench::dtype::float64, {3, 2});
  CHECK_THROWS_WITH(mm.run({&a, &d}), doctest::Contains("different element types"));
}

TEST_CASE("MatMulInteger and QLinearMatMul") {
  // Per-row zero point of A ([M]), per-column of B ([N]).
  const tensor a = tensor::from<std::uint8_t>({2, 2}, {5, 6, 7, 8});
  const tensor azp = tensor::from<std::uint8_t>({2}, {5, 6});
  const tensor b = tensor::from<std::int8_t>({2, 3}, {1, 2, 3, -1, -2, -3});
  const tensor bzp = tensor::from<std::int8_t>({3}, {0, 1, -1});
  node_runner mi{"MatMulInteger", 10};
  tensor y = mi.run({&a, &b, &azp, &bzp});
  // A - zp = [[0, 1], [1, 2]]; B - zp = [[1, 1, 4], [-1, -3, -2]].
  CHECK(y.dtype() == quench::dtype::int32);
  CHECK(values<std::int32_t>(y) == std::vector<std::int32_t>{-1, -3, -2, -1, -5, 0});
  const tensor mixed = tensor::from<std::int8_t>({}, {0});
  CHECK_THROWS_WITH(mi.run({&a, &b, &mixed}), doctest::Contains("A zero point: expected uint8"));

  // The ONNX test_qlinearmatmul_2D case (values from ONNX Runtime).
  const tensor qa = tensor::from<std::uint8_t>({2, 4}, {208, 236, 0, 238, 3, 214, 255, 29});
  const tensor qb = tensor::from<std::uint8_t>({4, 3}, {152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247});
  const tensor as = tensor::from<float>({1}, {0.0066f}), azp2 = tensor::from<std::uint8_t>({1}, {113});
  const tensor bs = tensor::from<float>({1}, {0.00705f}), bzp2 = tensor::from<std::uint8_t>({1}, {114});
  const tensor ys = tensor::from<float>({1}, {0.0107f}), yzp = tensor::from<std::uint8_t>({1}, {118});
  node_runner ql{"QLinearMatMul", 10};
  y = ql.run({&qa, &as, &azp2, &qb, &bs, &bzp2, &ys, &yzp});
  CHECK(values<std::uint8_t>(y) == std::vector<std::uint8_t>{168, 115, 255, 1, 66, 151});
  const tensor bs3 = tensor::from<float>({2}, {0.1f, 0.2f});
  CHECK_THROWS_WITH(ql.run({&qa, &as, &azp2, &qb, &bs3, &bzp2, &ys, &yzp}), doctest::Contains("b_scale: expected 1 or 3 values"));
}

TEST_CASE("Einsum: matmul-like equations, transposes, diagonals, sums and ellipses") {
  std::mt19937 rng(13);
  node_runner e{"Einsum", 12};
  auto run = [&](const std::string& eq, std::vector<const tensor*> in) {
    e.string_attrs["equation"] = eq;
    return e.run(in);
  };
  const tensor a = random_tensor<double>({3, 4}, rng);
  const tensor b = random_tensor<double>({4, 5}, rng);
  const auto av = a.view<double>();
  const auto bv = b.view<double>();
  auto mm = [&](std::int64_t i, std::int64_t k) {
    double acc = 0;
    for (std::int64_t j = 0; j < 4; ++j) acc += av[static_cast<std::size_t>(i * 4 + j)] * bv[static_cast<std::size_t>(j * 5 + k)];
    return acc;
  };
  for (const std::string eq : {"ij,jk->ik", "ij,jk", " ij , jk -> ik "}) {
    const tensor y = run(eq, {&a, &b});
    REQUIRE(y.shape() == quench::shape{3, 5});
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t k = 0; k < 5; ++k) CHECK(close(y.view<double>()[static_cast<std::size_t>(i * 5 + k)], mm(i, k), 1e-12));
  }
  tensor y = run("ij,jk->ki", {&a, &b});
  REQUIRE(y.shape() == quench::shape{5, 3});
  CHECK(close(y.view<double>()[1 * 3 + 2], mm(2, 1), 1e-12));
  y = run("ij->ji", {&a});
  REQUIRE(y.shape() == quench::shape{4, 3});
  CHECK(y.view<double>()[2 * 3 + 1] == av[1 * 4 + 2]);
  y = run("ij->", {&a});
  double total = 0;
  for (double v : av) total += v;
  CHECK(close(y.view<double>()[0], total, 1e-12));
  y = run("ij->j", {&a});
  CHECK(close(y.view<double>()[1], av[1] + av[5] + av[9], 1e-12));

  const tensor sq = random_tensor<double>({2, 3, 3}, rng);
  y = run("...ii->...i", {&sq});
  REQUIRE(y.shape() == quench::shape{2, 3});
  CHECK(y.view<double>()[1 * 3 + 2] == sq.view<double>()[9 + 2 * 3 + 2]);
  y = run("bii", {&sq});  // implicit: b appears once, i twice -> output "b": the traces
  REQUIRE(y.shape() == quench::shape{2});
  CHECK(close(y.view<double>()[0], sq.view<double>()[0] + sq.view<double>()[4] + sq.view<double>()[8], 1e-12));

  const tensor v = random_tensor<double>({4}, rng);
  y = run("i,i", {&v, &v});
  double dot = 0;
  for (double x : v.view<double>()) dot += x * x;
  CHECK(y.shape() == quench::shape{});
  CHECK(close(y.view<double>()[0], dot, 1e-12));

  // Attention-style: [b, h, i, d] x [b, h, j, d] -> [b, h, i, j] (B read transposed, no copy).
  const tensor q = random_tensor<double>({2, 3, 4, 5}, rng);
  const tensor k = random_tensor<double>({2, 3, 6, 5}, rng);
  y = run("bhid,bhjd->bhij", {&q, &k});
  REQUIRE(y.shape() == quench::shape{2, 3, 4, 6});
  {
    double acc = 0;
    for (int d = 0; d < 5; ++d) acc += q.view<double>()[static_cast<std::size_t>(((1 * 3 + 2) * 4 + 3) * 5 + d)] * k.view<double>()[static_cast<std::size_t>(((1 * 3 + 2) * 6 + 1) * 5 + d)];
    CHECK(close(y.view<double>()[static_cast<std::size_t>(((1 * 3 + 2) * 4 + 3) * 6 + 1)], acc, 1e-12));
  }
  // Ellipsis with broadcasting batch axes, and three operands.
  const tensor e1 = random_tensor<double>({2, 1, 3, 4}, rng);
  const tensor e2 = random_tensor<double>({5, 4, 2}, rng);
  y = run("...ij,...jk->...ik", {&e1, &e2});
  REQUIRE(y.shape() == quench::shape{2, 5, 3, 2});
  {
    double acc = 0;
    for (int j = 0; j < 4; ++j) acc += e1.view<double>()[static_cast<std::size_t>((1 * 3 + 2) * 4 + j)] * e2.view<double>()[static_cast<std::size_t>((3 * 4 + j) * 2 + 1)];
    CHECK(close(y.view<double>()[static_cast<std::size_t>(((1 * 5 + 3) * 3 + 2) * 2 + 1)], acc, 1e-12));
  }
  const tensor c = random_tensor<double>({5, 2}, rng);
  y = run("ij,jk,kl->il", {&a, &b, &c});
  REQUIRE(y.shape() == quench::shape{3, 2});
  {
    double acc = 0;
    for (int kk = 0; kk < 5; ++kk) acc += mm(2, kk) * c.view<double>()[static_cast<std::size_t>(kk * 2 + 1)];
    CHECK(close(y.view<double>()[2 * 2 + 1], acc, 1e-12));
  }

  CHECK_THROWS_WITH(run("ij,jk->ik", {&a}), doctest::Contains("2 operand term(s) for 1 input(s)"));
  CHECK_THROWS_WITH(run("ijk->i", {&a}), doctest::Contains("does not match input 0 of rank 2"));
  CHECK_THROWS_WITH(run("ij,jk->iz", {&a, &b}), doctest::Contains("output label 'z' is in no input"));
  CHECK_THROWS_WITH(run("ij,kj->ik", {&a, &b}), doctest::Contains("do not broadcast"));
  CHECK_THROWS_WITH(run("i#->i", {&a}), doctest::Contains("unexpected character '#'"));
}
