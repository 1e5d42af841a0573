// SHA-256 (FIPS 180-4), for verifying bundle files against their manifest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ddad_rt {

//! Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  //! Finishes and returns the digest as 64 lowercase hex characters.
  std::string hex_digest();

 private:
  void block(const std::uint8_t* p);
  std::uint32_t h_[8];
  std::uint8_t buf_[64];
  std::size_t buf_len_ = 0;
  std::uint64_t total_ = 0;
};

//! SHA-256 of a byte string, as lowercase hex.
std::string sha256_hex(const std::string& bytes);

}  // namespace ddad_rt
