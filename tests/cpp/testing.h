// A minimal test harness (no third-party code): TEST registers a case, CHECK records a
// failure and continues, REQUIRE stops the case. The runner prints "N passed, N failed".
#pragma once

#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace testing {

struct Case {
  const char* name;
  std::function<void()> body;
};

std::vector<Case>& registry();
void record_failure(const char* file, int line, const std::string& what);

struct Registrar {
  Registrar(const char* name, std::function<void()> body) {
    registry().push_back({name, std::move(body)});
  }
};

struct Abort {};

}  // namespace testing

#define DDAD_CONCAT2(a, b) a##b
#define DDAD_CONCAT(a, b) DDAD_CONCAT2(a, b)
#define TEST(name)                                                                   \
  static void name();                                                                \
  static ::testing::Registrar DDAD_CONCAT(registrar_, name)(#name, name);            \
  static void name()

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) ::testing::record_failure(__FILE__, __LINE__, "CHECK(" #cond ")");  \
  } while (0)

#define REQUIRE(cond)                                                                \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      ::testing::record_failure(__FILE__, __LINE__, "REQUIRE(" #cond ")");           \
      throw ::testing::Abort{};                                                      \
    }                                                                                \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
  do {                                                                               \
    const double da_ = (a), db_ = (b);                                               \
    if (!(std::fabs(da_ - db_) <= (tol))) {                                          \
      std::ostringstream os_;                                                        \
      os_ << "CHECK_NEAR(" #a ", " #b ") " << da_ << " vs " << db_ << " tol " << (tol); \
      ::testing::record_failure(__FILE__, __LINE__, os_.str());                      \
    }                                                                                \
  } while (0)

// Checks that `expr` throws `type` whose what() contains `needle`.
#define CHECK_THROWS_WITH(expr, type, needle)                                        \
  do {                                                                               \
    bool thrown_ = false;                                                            \
    try {                                                                            \
      (void)(expr);                                                                  \
    } catch (const type& e_) {                                                       \
      thrown_ = true;                                                                \
      if (std::string(e_.what()).find(needle) == std::string::npos) {                \
        ::testing::record_failure(__FILE__, __LINE__,                                \
                                  std::string("message lacks '") + (needle) +        \
                                      "': " + e_.what());                            \
      }                                                                              \
    }                                                                                \
    if (!thrown_) {                                                                  \
      ::testing::record_failure(__FILE__, __LINE__, "expected " #type " from " #expr); \
    }                                                                                \
  } while (0)
