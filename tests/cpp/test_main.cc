#include <cstdio>
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

int main() {
  int passed = 0, failed = 0;
  for (const auto& c : testing::registry()) {
    testing::failures_in_case = 0;
    try {
      c.body();
    } catch (const testing::Abort&) {
    } catch (const std::exception& e) {
      testing::record_failure(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    const bool ok = testing::failures_in_case == 0;
    std::printf("[%s] %s\n", ok ? "PASS" : "FAIL", c.name);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
