#include "net/ports/registry.h"

#include <cerrno>

namespace vhost {

// Every port, one line each: X(name JS uses, factory). The factory is defined in the port's own .cc
// (net/ports/<name>.cc); this list both declares it (below) and fills the table, so adding a port is
// its .cc plus one line here, and no other native file knows the port's class. The closing comment
// line ends the macro, so a new line above it leaves the other lines as they are.
// One port per line, aligned wide, so that a new port is a one-line diff.
// clang-format off
#define VHOST_PORTS(X)                        \
  X("loopback", MakeLoopback)                 \
  X("tap", MakeTap)                           \
  X("sink", MakeSink)                         \
  X("source", MakeSource)                     \
  X("js", MakeJs)                             \
  X("user", MakeUser)                         \
  X("switch", MakeSwitch)                     \
  /* end of the port list */
// clang-format on

#define VHOST_DECLARE_PORT(name, factory) std::unique_ptr<Port> factory(const PortOptions& options, PortError* err);
VHOST_PORTS(VHOST_DECLARE_PORT)
#undef VHOST_DECLARE_PORT

namespace {

struct Entry {
  const char* name;
  PortFactory make;
};

#define VHOST_PORT_ENTRY(name, factory) {name, &factory},
constexpr Entry kPorts[] = {VHOST_PORTS(VHOST_PORT_ENTRY)};
#undef VHOST_PORT_ENTRY

}  // namespace

const std::string* PortOptions::String(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : std::get_if<std::string>(&it->second);
}

bool PortOptions::Int(const std::string& key, int64_t min, int64_t max, int64_t* out) const {
  auto it = values_.find(key);
  const int64_t* v = it == values_.end() ? nullptr : std::get_if<int64_t>(&it->second);
  if (!v || *v < min || *v > max) return false;
  *out = *v;
  return true;
}

std::unique_ptr<Port> CreatePort(const std::string& name, const PortOptions& options, PortError* err) {
  for (const Entry& e : kPorts)
    if (name == e.name) return e.make(options, err);
  std::string names;
  for (const Entry& e : kPorts) names += std::string(names.empty() ? "" : ", ") + e.name;
  *err = PortError{EINVAL, "unknown port '" + name + "' (available: " + names + ")"};
  return nullptr;
}

}  // namespace vhost
