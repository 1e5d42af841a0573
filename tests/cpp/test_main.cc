#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>

#include "testing.h"

namespace testing {

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

namespace {
int failures_in_case = 0;
}

void record_failure(const char* file, int line, const std::string& what) {
  ++failures_in_case;
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, what.c_str());
}

}  // namespace testing

// ddad_rt_tests [SUBSTRING ...]: runs the cases whose names contain one of the substrings
// (all cases without arguments), printing each one's wall time so slow cases stand out
// under the sanitizers.
int main(int argc, char** argv) {
  int passed = 0, failed = 0;
  for (const auto& c : testing::registry()) {
    bool selected = argc < 2;
    for (int i = 1; i < argc && !selected; ++i) selected = std::strstr(c.name, argv[i]) != nullptr;
    if (!selected) continue;
    testing::failures_in_case = 0;
    const auto start = std::chrono::steady_clock::now();
    try {
      c.body();
    } catch (const testing::Abort&) {
    } catch (const std::exception& e) {
      testing::record_failure(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    const bool ok = testing::failures_in_case == 0;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("[%s] %s (%.0f ms)\n", ok ? "PASS" : "FAIL", c.name, ms);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
