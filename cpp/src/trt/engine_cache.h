// The on-disk cache of serialized TensorRT engines (plans) and timing caches. Independent of
// the TensorRT headers, so every build compiles it and the CPU tests check it.
//
// A plan is only valid for the graph, batch range and precision it was built for, on the
// TensorRT release and GPU architecture that built it. Everything it depends on goes into a
// key; the file name is a hash of the key, and the file repeats the key and the payload's
// length and sha256, so a stale, truncated or corrupt file is recognised and rebuilt instead
// of being handed to TensorRT.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ddad_rt::trt {

//! Everything a serialized engine depends on.
struct PlanKey {
  std::string bundle_identity;     //!< the bundle's identity (hash of its graph files)
  std::string role;                //!< "ensemble", "refine_dual" or "refine_intra"
  std::string graph_sha256;        //!< the graph file's hash
  std::int64_t max_batch = 0;      //!< the profile covers batch 1..max_batch
  std::string precision;           //!< "fp32" or "fp16"
  std::string tensorrt_version;    //!< of the library that builds and runs it, e.g. "10.3.0"
  std::string compute_capability;  //!< of the GPU, e.g. "8.7"
  int profiles = 1;                //!< identical optimisation profiles (one per slot)
  std::string ddad_rt_version;     //!< of the engine that built it (a release may change
                                   //!< how graphs are turned into networks)
  std::string build_recipe;        //!< the builder settings (TF32 off, the fp16 rewrite, ...)

  //! The key as text: one "field=value" line per field, in a fixed order.
  std::string text() const;
  //! "<role>-<24 hex digits of sha256(text())>.plan"
  std::string file_name() const;
};

//! The timing cache is shared by every bundle on one TensorRT release and GPU architecture.
struct TimingCacheKey {
  std::string tensorrt_version;
  std::string compute_capability;
  std::string text() const;
  //! "timing-trt<version>-sm<major><minor>.cache"
  std::string file_name() const;
};

//! What read_cache_file found.
enum class CacheRead { kHit, kAbsent, kCorrupt, kStale };

//! The payload, or why there is none.
struct CacheEntry {
  CacheRead status = CacheRead::kAbsent;
  std::string payload;  //!< the plan bytes when status == kHit
  std::string reason;   //!< e.g. "corrupt: payload sha256 mismatch"; empty on a hit
};

//! Reads `path`, checks its header against `key_text` and its payload against the recorded
//! length and sha256. Never throws for a bad file: that is a miss with a reason.
CacheEntry read_cache_file(const std::string& path, const std::string& key_text);

//! Writes `payload` with its header to `path` atomically (a temporary file in the same folder,
//! then rename), creating the folder. Throws std::runtime_error on failure.
void write_cache_file(const std::string& path, const std::string& key_text,
                      const void* payload, std::size_t size);

//! $DDAD_RT_CACHE_DIR, else $XDG_CACHE_HOME/ddad_rt/tensorrt, else ~/.cache/ddad_rt/tensorrt,
//! else (no home folder) <temp>/ddad_rt-<uid>/tensorrt in a folder private to this user.
//! A plan is code TensorRT runs: a cache another user can write to would let them choose it.
//! Throws std::runtime_error when that private folder is owned by someone else or is not a
//! plain directory.
std::string default_cache_dir();

//! Creates `dir` (and parents) if needed, owned by this user with mode 0700; refuses one
//! owned by another user or that is a symbolic link. Throws std::runtime_error.
void ensure_private_dir(const std::string& dir);

}  // namespace ddad_rt::trt
