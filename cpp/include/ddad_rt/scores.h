// The score keys of DDAD-ASR (DESIGN.md section 3), in one fixed order used everywhere.
#pragma once

#include <array>
#include <optional>
#include <string>

namespace ddad_rt {

//! One anomaly score (and its map).
enum class Score : int { kRec = 0, kIntra = 1, kInter = 2, kRIntra = 3, kRDual = 4 };

//! Number of score keys.
constexpr int kNumScores = 5;

//! All scores, in key order.
constexpr std::array<Score, kNumScores> kAllScores{Score::kRec, Score::kIntra, Score::kInter,
                                                   Score::kRIntra, Score::kRDual};

//! The key of a score as files and the Python API spell it: "rec", "intra", "inter",
//! "r_intra", "r_dual".
inline const char* score_key(Score s) {
  switch (s) {
    case Score::kRec: return "rec";
    case Score::kIntra: return "intra";
    case Score::kInter: return "inter";
    case Score::kRIntra: return "r_intra";
    case Score::kRDual: return "r_dual";
  }
  return "?";
}

//! A set of scores: the ones a caller wants computed, or the ones a bundle has.
class ScoreSet {
 public:
  constexpr ScoreSet() = default;
  //! Every score.
  static constexpr ScoreSet all() { return from_bits((1u << kNumScores) - 1u); }
  //! The set whose bit (1 << int(Score)) is set for each member; other bits are dropped.
  static constexpr ScoreSet from_bits(unsigned bits) {
    ScoreSet set;
    set.bits_ = bits & ((1u << kNumScores) - 1u);
    return set;
  }
  constexpr unsigned bits() const { return bits_; }
  constexpr bool contains(Score s) const { return (bits_ >> static_cast<int>(s)) & 1u; }
  constexpr void insert(Score s) { bits_ |= 1u << static_cast<int>(s); }
  constexpr bool empty() const { return bits_ == 0; }
  //! True when every member of `other` is also in this set.
  constexpr bool includes(ScoreSet other) const { return (other.bits_ & ~bits_) == 0; }
  constexpr bool operator==(ScoreSet o) const { return bits_ == o.bits_; }
  constexpr bool operator!=(ScoreSet o) const { return bits_ != o.bits_; }

 private:
  unsigned bits_ = 0;
};

//! The score named `key`, or nothing.
inline std::optional<Score> score_from_key(const std::string& key) {
  for (Score s : kAllScores) {
    if (key == score_key(s)) return s;
  }
  return std::nullopt;
}

//! The keys of a set, in key order, e.g. "rec, intra, inter".
inline std::string score_keys(ScoreSet set) {
  std::string keys;
  for (Score s : kAllScores) {
    if (!set.contains(s)) continue;
    if (!keys.empty()) keys += ", ";
    keys += score_key(s);
  }
  return keys;
}

}  // namespace ddad_rt
