// A small JSON reader for bundle manifests (RFC 8259 subset: no duplicate-key checks).
// Manifests are tiny and written by our own exporter, but a bundle may come from anywhere,
// so malformed input throws instead of reading out of bounds.
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddad_rt::json {

//! Parse failure, with the byte offset.
class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

//! A JSON value.
class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Value() = default;
  static Value boolean(bool b);
  static Value number(double d);
  static Value string(std::string s);
  static Value array(std::vector<Value> items);
  static Value object(std::map<std::string, Value> members);

  Type type() const { return type_; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kNumber; }

  bool as_bool() const;
  double as_number() const;
  const std::string& as_string() const;
  const std::vector<Value>& as_array() const;
  const std::map<std::string, Value>& as_object() const;
  //! Member of an object, or nullptr when absent (or when this is not an object).
  const Value* find(const std::string& key) const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::shared_ptr<std::vector<Value>> array_;
  std::shared_ptr<std::map<std::string, Value>> object_;
};

//! Parses a complete JSON document.
Value parse(const std::string& text);

}  // namespace ddad_rt::json
