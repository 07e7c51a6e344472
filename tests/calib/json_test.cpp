// The small JSON reader/writer and base64 of include/quench/calib/detail/ (used by the state and
// table formats).

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/detail/base64.hpp"
#include "quench/calib/detail/json.hpp"

using quench::detail::json_value;
using quench::detail::parse_json;

TEST_CASE("JSON parse: values, escapes, numbers kept exact") {
  const auto v = parse_json(R"( {"a": [1, -2.5e3, true, false, null], "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00",
      "big": 9007199254740993, "neg": -9223372036854775808, "d": 0.1, "a": 7} )",
                            "t");
  const auto& a = v.at("a", "t").as_array("t");
  REQUIRE(a.size() == 5);
  CHECK(a[0].as_int64("t") == 1);
  CHECK(a[1].as_double("t") == -2500.0);
  CHECK(a[2].as_bool("t"));
  CHECK(!a[3].as_bool("t"));
  CHECK(a[4].is_null());
  CHECK(v.at("s", "t").as_string("t") == "q\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(v.at("big", "t").as_int64("t") == 9007199254740993);  // no detour through double
  CHECK(v.at("neg", "t").as_int64("t") == INT64_MIN);
  CHECK(v.at("d", "t").as_double("t") == 0.1);
  CHECK(v.find("missing") == nullptr);
  CHECK_THROWS_AS(v.at("missing", "t"), quench::error);
  CHECK_THROWS_AS(v.at("d", "t").as_int64("t"), quench::error);
  CHECK_THROWS_AS(v.at("s", "t").as_double("t"), quench::error);
  CHECK(parse_json("[]", "t").as_array("t").empty());
  CHECK(parse_json("{}", "t").as_object("t").empty());
}

TEST_CASE("JSON parse errors are quench::error with line and column, never a crash") {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "tru", "\"abc", "\"\\x\"", "\"\\u12\"",
                          "\"\\ud800\"", "\"\\udc00x\"", "01", "1.", "-", "1e", "[1] 2", "{\"a\":1,}", "\"\x01\"",
                          "nul", "[\"a\" \"b\"]"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_json(bad, "t"), quench::error);
  }
  try {
    parse_json("{\n  \"a\": [1, 2,\n  x]}", "state.json");
    FAIL("expected an error");
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::parse_error);
    CHECK(std::string(e.what()).find("state.json: line 3 column 3") != std::string::npos);
  }
  CHECK_THROWS_AS(parse_json(std::string(100000, '['), "t"), quench::error);  // depth limit, no stack overflow
  CHECK_THROWS_AS(parse_json("1e999", "t").as_double("t"), quench::error);
  CHECK_THROWS_AS(parse_json("99999999999999999999", "t").as_int64("t"), quench::error);
  CHECK_THROWS_AS(parse_json("-1", "t").as_uint64("t"), quench::error);
}

TEST_CASE("JSON strings round-trip through json_quote, ASCII-only as Python's json.dumps") {
  const std::string s = std::string("a\"b\\c\n\t\x01\x7f") + "\xc3\xa9\xf0\x9f\x98\x80";
  CHECK(parse_json(quench::detail::json_quote(s), "t").as_string("t") == s);
  const std::string ascii = quench::detail::json_quote(s, true);
  CHECK(ascii == "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\\u00e9\\ud83d\\ude00\"");
  CHECK(parse_json(ascii, "t").as_string("t") == s);
}

TEST_CASE("python_float_repr equals Python's repr() and reads back exactly") {
  const auto& ref = calib_test::reference();
  if (ref.is_null()) return;
  for (const auto& r : ref.at("tables", "ref").at("repr", "ref").as_array("ref")) {
    const auto& pair = r.as_array("ref");
    const std::uint64_t bits = pair[0].as_uint64("ref");
    double v;
    std::memcpy(&v, &bits, 8);
    const std::string text = quench::detail::python_float_repr(v);
    CHECK(text == pair[1].as_string("ref"));
    const double back = parse_json(text, "t").as_double("t");
    CHECK(std::memcmp(&back, &v, 8) == 0);
  }
  CHECK(quench::detail::python_float_repr(HUGE_VAL) == "null");
}

TEST_CASE("base64 round trip and rejection of malformed input") {
  std::mt19937 rng(1);
  for (std::size_t n = 0; n < 40; ++n) {
    std::vector<unsigned char> b(n);
    for (auto& x : b) x = static_cast<unsigned char>(rng());
    const std::string e = quench::detail::base64_encode(b.data(), b.size());
    CHECK(e.size() == (n + 2) / 3 * 4);
    CHECK(quench::detail::base64_decode(e, "t") == b);
  }
  CHECK(quench::detail::base64_encode(reinterpret_cast<const unsigned char*>("Man"), 3) == "TWFu");
  CHECK(quench::detail::base64_encode(reinterpret_cast<const unsigned char*>("Ma"), 2) == "TWE=");
  for (const char* bad : {"TWF", "TW=u", "TWE*", "T===", "=AAA"}) CHECK_THROWS_AS(quench::detail::base64_decode(bad, "t"), quench::error);
  const std::vector<std::int64_t> counts{0, 1, -1, INT64_MAX, INT64_MIN, 123456789012345};
  CHECK(quench::detail::unpack_int64(quench::detail::pack_int64(counts), "t") == counts);
  const std::vector<float> f{0.0f, -0.0f, 1.5f, -3e38f, 1e-45f};
  const auto g = quench::detail::unpack_float32(quench::detail::pack_float32(f), "t");
  CHECK(std::memcmp(f.data(), g.data(), f.size() * 4) == 0);
  CHECK_THROWS_AS(quench::detail::unpack_int64("TWFu", "t"), quench::error);  // 3 bytes is not an int64
}
