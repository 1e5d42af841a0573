// Exceptions thrown by ddad_rt. The Python module maps them to ddad_rt.BundleError,
// ddad_rt.EngineError and ValueError (std::invalid_argument), so every message must say
// what is wrong and what to do about it.
#pragma once

#include <stdexcept>
#include <string>

namespace ddad_rt {

//! A bundle is missing, malformed, of another format version or fails its integrity check.
class BundleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

//! The engine cannot be created or run (unavailable device, backend failure).
class EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ddad_rt
