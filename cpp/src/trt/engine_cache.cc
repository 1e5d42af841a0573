#include "trt/engine_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "sha256.h"

namespace ddad_rt::trt {
namespace {

namespace fs = std::filesystem;

// Bump when the file layout or the meaning of a key field changes.
constexpr const char* kMagic = "ddad_rt engine cache v1\n";

std::string hash_prefix(const std::string& text) { return sha256_hex(text).substr(0, 24); }

// Reads "<label>: <value>\n" at `pos`; advances `pos` past it.
bool read_field(const std::string& s, size_t& pos, const std::string& label, std::string& value) {
  const std::string head = label + ": ";
  if (s.compare(pos, head.size(), head) != 0) return false;
  const size_t end = s.find('\n', pos + head.size());
  if (end == std::string::npos) return false;
  value = s.substr(pos + head.size(), end - pos - head.size());
  pos = end + 1;
  return true;
}

bool parse_size(const std::string& text, std::uint64_t& out) {
  if (text.empty() || text.size() > 19) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  out = std::stoull(text);
  return true;
}

}  // namespace

std::string PlanKey::text() const {
  std::ostringstream s;
  s << "bundle_identity=" << bundle_identity << "\n"
    << "role=" << role << "\n"
    << "graph_sha256=" << graph_sha256 << "\n"
    << "max_batch=" << max_batch << "\n"
    << "precision=" << precision << "\n"
    << "tensorrt_version=" << tensorrt_version << "\n"
    << "compute_capability=" << compute_capability << "\n"
    << "profiles=" << profiles << "\n"
    << "ddad_rt_version=" << ddad_rt_version << "\n"
    << "build_recipe=" << build_recipe << "\n";
  return s.str();
}

std::string PlanKey::file_name() const { return role + "-" + hash_prefix(text()) + ".plan"; }

std::string TimingCacheKey::text() const {
  return "timing_cache\ntensorrt_version=" + tensorrt_version +
         "\ncompute_capability=" + compute_capability + "\n";
}

std::string TimingCacheKey::file_name() const {
  std::string cc;
  for (char c : compute_capability) {
    if (c != '.') cc += c;
  }
  return "timing-trt" + tensorrt_version + "-sm" + cc + ".cache";
}

CacheEntry read_cache_file(const std::string& path, const std::string& key_text) {
  CacheEntry e;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    e.status = CacheRead::kAbsent;
    e.reason = "absent";
    return e;
  }
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto corrupt = [&](const std::string& why) {
    e.status = CacheRead::kCorrupt;
    e.reason = "corrupt (" + why + ")";
    return e;
  };
  const std::string magic = kMagic;
  if (s.compare(0, magic.size(), magic) != 0) return corrupt("not a ddad_rt cache file");
  size_t pos = magic.size();
  std::string key_len_text, payload_len_text, payload_hash;
  std::uint64_t key_len = 0, payload_len = 0;
  if (!read_field(s, pos, "key-bytes", key_len_text) || !parse_size(key_len_text, key_len) ||
      pos + key_len > s.size()) {
    return corrupt("bad header");
  }
  const std::string stored_key = s.substr(pos, key_len);
  pos += key_len;
  if (!read_field(s, pos, "payload-bytes", payload_len_text) ||
      !parse_size(payload_len_text, payload_len) ||
      !read_field(s, pos, "payload-sha256", payload_hash)) {
    return corrupt("bad header");
  }
  if (stored_key != key_text) {
    e.status = CacheRead::kStale;
    e.reason = "stale (written for another key)";
    return e;
  }
  if (s.size() - pos != payload_len) {
    return corrupt("payload is " + std::to_string(s.size() - pos) + " bytes, header says " +
                   std::to_string(payload_len));
  }
  e.payload = s.substr(pos);
  if (sha256_hex(e.payload) != payload_hash) {
    e.payload.clear();
    return corrupt("payload sha256 mismatch");
  }
  e.status = CacheRead::kHit;
  return e;
}

void write_cache_file(const std::string& path, const std::string& key_text, const void* payload,
                      std::size_t size) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec) {
    throw std::runtime_error("cannot create the cache folder " +
                             target.parent_path().string() + ": " + ec.message());
  }
  static std::atomic<unsigned> counter{0};
  const fs::path tmp = target.string() + ".tmp." + std::to_string(getpid()) + "." +
                       std::to_string(counter++);
  {
    const std::string bytes(static_cast<const char*>(payload), size);
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << kMagic << "key-bytes: " << key_text.size() << "\n"
        << key_text << "payload-bytes: " << size << "\n"
        << "payload-sha256: " << sha256_hex(bytes) << "\n";
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      fs::remove(tmp, ec);
      throw std::runtime_error("cannot write " + tmp.string() + " (disk full or no permission?)");
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error("cannot move the cache file into place at " + path + ": " +
                             ec.message());
  }
}

std::string default_cache_dir() {
  if (const char* dir = std::getenv("DDAD_RT_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    return (fs::path(xdg) / "ddad_rt" / "tensorrt").string();
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return (fs::path(home) / ".cache" / "ddad_rt" / "tensorrt").string();
  }
  // No home folder (a service account, a container): the shared temp folder, in a folder
  // of this user's own. A shared /tmp/ddad_rt would let any user plant plans.
  const fs::path mine = fs::temp_directory_path() / ("ddad_rt-" + std::to_string(geteuid()));
  ensure_private_dir(mine.string());
  return (mine / "tensorrt").string();
}

void ensure_private_dir(const std::string& dir) {
  std::error_code ec;
  const fs::path path(dir);
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create the engine cache folder " + dir + ": " +
                             std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw std::runtime_error("the engine cache folder " + dir +
                             " is not a directory (a symbolic link?): remove it, or set "
                             "DDAD_RT_CACHE_DIR to a folder of your own");
  }
  if (st.st_uid != ::geteuid()) {
    throw std::runtime_error("the engine cache folder " + dir + " belongs to user " +
                             std::to_string(st.st_uid) + ", not to this one (" +
                             std::to_string(::geteuid()) +
                             "): its plans cannot be trusted; set DDAD_RT_CACHE_DIR to a "
                             "folder of your own");
  }
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) {
    throw std::runtime_error("cannot make the engine cache folder " + dir + " private: " +
                             std::strerror(errno));
  }
}

}  // namespace ddad_rt::trt
