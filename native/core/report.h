// Where the data path sends reasons for the log (a queue broken, frames dropped, guest memory
// faulted). The device queues them for JS (takeEvents); the worker never blocks on JS.
#pragma once

#include <functional>
#include <string>

namespace vhost {

using Reporter = std::function<void(const std::string&)>;

}  // namespace vhost
