#include "dynlib.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace ddad_rt {

DynLib::~DynLib() {
  if (handle_) dlclose(handle_);
}

void* DynLib::symbol(const char* name) const { return dlsym(handle_, name); }

std::vector<std::string> split_path_list(const std::string& value) {
  std::vector<std::string> out;
  std::stringstream s(value);
  std::string item;
  while (std::getline(s, item, ':')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

DynLibSearch open_library(const std::string& name, const std::vector<std::string>& dirs,
                          bool global) {
  namespace fs = std::filesystem;
  // RTLD_NODELETE: libraries such as TensorRT register exit handlers; unloading them from a
  // static destructor (dlclose at process exit) could run those after their code is gone.
  const int flags = RTLD_NOW | RTLD_NODELETE | (global ? RTLD_GLOBAL : RTLD_LOCAL);
  DynLibSearch result;
  for (const std::string& dir : dirs) {
    const fs::path file = fs::path(dir) / name;
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      result.tried.push_back(dir + " (no " + name + ")");
      continue;
    }
    dlerror();
    if (void* h = dlopen(file.c_str(), flags)) {
      result.lib = std::make_shared<DynLib>(h, file.string());
      return result;
    }
    const char* err = dlerror();
    result.tried.push_back(file.string() + " (exists but does not load: " +
                           (err ? err : "unknown error") + ")");
  }
  dlerror();
  if (void* h = dlopen(name.c_str(), flags)) {
    result.lib = std::make_shared<DynLib>(h, name);
    return result;
  }
  const char* err = dlerror();
  const char* ld = std::getenv("LD_LIBRARY_PATH");
  result.tried.push_back(std::string("the system library path (LD_LIBRARY_PATH=") +
                         (ld && *ld ? ld : "unset") + ", /etc/ld.so.cache, /lib, /usr/lib): " +
                         (err ? err : "not found"));
  return result;
}

std::string DynLibSearch::explain(const std::string& name) const {
  std::string out = name + " not found; looked in ";
  for (size_t i = 0; i < tried.size(); ++i) {
    if (i) out += i + 1 == tried.size() ? ", and " : ", ";
    out += tried[i];
  }
  return out;
}

}  // namespace ddad_rt
