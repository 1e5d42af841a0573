#include <string>

#include "json.h"
#include "sha256.h"
#include "testing.h"

using ddad_rt::sha256_hex;
namespace json = ddad_rt::json;

TEST(sha256_known_vectors) {
  // FIPS 180-4 examples.
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(sha256_incremental_equals_one_shot) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 37);
  ddad_rt::Sha256 h;
  for (std::size_t off = 0; off < data.size(); off += 7) h.update(data.data() + off, std::min<std::size_t>(7, data.size() - off));
  CHECK(h.hex_digest() == sha256_hex(data));
}

TEST(json_parses_manifest_like_documents) {
  const json::Value v = json::parse(
      R"({"a": [1, 2.5, -3e2], "s": "x\"\u00e9\ud83d\ude00", "t": true, "n": null, "o": {}})");
  REQUIRE(v.is_object());
  CHECK(v.find("a")->as_array().size() == 3);
  CHECK(v.find("a")->as_array()[2].as_number() == -300.0);
  CHECK(v.find("s")->as_string() == "x\"\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(v.find("missing") == nullptr);
  CHECK(v.find("o")->as_object().empty());
}

TEST(json_rejects_malformed_input) {
  const char* bad[] = {"", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "\"abc", "01x", "[1] 2",
                       "{\"a\":\"\\x\"}", "\"\\ud800\"", "nul", "-", "1.", "1e"};
  for (const char* text : bad) {
    bool threw = false;
    try {
      json::parse(text);
    } catch (const json::ParseError&) {
      threw = true;
    }
    if (!threw) ::testing::record_failure(__FILE__, __LINE__, std::string("accepted: ") + text);
  }
  std::string deep(200, '[');
  CHECK_THROWS_WITH(json::parse(deep), json::ParseError, "too deep");
}
