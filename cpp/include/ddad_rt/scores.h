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

//! The score named `key`, or nothing.
inline std::optional<Score> score_from_key(const std::string& key) {
  for (Score s : kAllScores) {
    if (key == score_key(s)) return s;
  }
  return std::nullopt;
}

}  // namespace ddad_rt
