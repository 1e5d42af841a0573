// Loading shared libraries at run time (dlopen) with a report of where we looked, so that a
// missing optional dependency (TensorRT) gives a message the user can act on.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace ddad_rt {

//! A library opened with dlopen; closed when the last reference goes.
class DynLib {
 public:
  DynLib(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  ~DynLib();
  DynLib(const DynLib&) = delete;
  DynLib& operator=(const DynLib&) = delete;
  //! The address of `symbol`, or null.
  void* symbol(const char* name) const;
  //! Where it was found (the file, or the bare name when the system search found it).
  const std::string& path() const { return path_; }

 private:
  void* handle_;
  std::string path_;
};

//! The outcome of a search: the library, or why not (every place tried, and what dlopen said
//! where a file existed but would not load).
struct DynLibSearch {
  std::shared_ptr<DynLib> lib;
  std::vector<std::string> tried;  //!< "PATH: what happened", in search order
  //! One sentence: "libX not found; looked in A (absent), B (...: error), and the system
  //! library path (LD_LIBRARY_PATH=..., /etc/ld.so.cache)".
  std::string explain(const std::string& name) const;
};

//! Opens `name` (e.g. "libnvinfer.so.10") from the first of `dirs` that has it, else through
//! the system search (LD_LIBRARY_PATH, rpath, ld.so.cache). `global` makes its symbols
//! visible to libraries opened later (RTLD_GLOBAL).
DynLibSearch open_library(const std::string& name, const std::vector<std::string>& dirs,
                          bool global = false);

//! Splits a colon-separated list (an environment variable's value), dropping empty entries.
std::vector<std::string> split_path_list(const std::string& value);

}  // namespace ddad_rt
