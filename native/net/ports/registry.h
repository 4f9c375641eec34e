// The port registry: makes a port by its name from plain values. lib/net/ports has checked those
// values already (its file for the port says which it passes); the factories only convert them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>

#include "net/port.h"

namespace vhost {

// A port's options as JS handed them: name -> string or integer, nothing else.
class PortOptions {
 public:
  using Value = std::variant<std::string, int64_t>;

  void Set(const std::string& key, Value v) { values_[key] = std::move(v); }
  // Null when absent or not a string.
  const std::string* String(const std::string& key) const;
  // False when absent, not an integer, or outside [min, max] (a caller that skipped lib/net/ports).
  bool Int(const std::string& key, int64_t min, int64_t max, int64_t* out) const;

 private:
  std::map<std::string, Value> values_;
};

// Why a port could not be made: an errno value and one line for the user.
struct PortError {
  int err_no = 0;
  std::string message;
};

// A port's factory: null with *err set when the port cannot be made (a tap the system refuses).
using PortFactory = std::unique_ptr<Port> (*)(const PortOptions& options, PortError* err);

// Makes the port `name`; null with *err set (EINVAL for a name no port has).
std::unique_ptr<Port> CreatePort(const std::string& name, const PortOptions& options, PortError* err);

}  // namespace vhost
