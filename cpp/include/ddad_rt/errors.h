// Exceptions thrown by ddad_rt. The Python module maps them to ddad_rt.BundleError,
// ddad_rt.EngineError and ddad_rt.InputError (a ValueError; std::invalid_argument), the C API
// to status codes (ddad_rt.h), so every message must say what is wrong and what to do.
#pragma once

#include <stdexcept>
#include <string>

#include "ddad_rt/export.h"

namespace ddad_rt {

//! A bundle is missing, malformed, of another format version or fails its integrity check.
class DDAD_RT_API BundleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

//! The engine cannot be created or run (unavailable device, backend failure).
class DDAD_RT_API EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ddad_rt
