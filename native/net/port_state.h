// What a port carries from one back-end to another when the front-end migrates the device
// (vhost-user DEVICE_STATE): plain values that lib/net/device_state.ts turns into a blob and back,
// checking every byte of it there. Only the fields of the port's own kind are filled.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vhost {

struct PortState {
  // The user port: its open host -> guest forwards, spelled out as lib/net/ports/user.ts does
  // ("tcp:HOSTADDR:HOSTPORT:GUESTADDR:GUESTPORT"). A load leaves them to NetDevice::Forward.
  std::vector<std::string> forwards;
  // The user port: libslirp's own state (DHCP leases, IP id) as slirp_state_save wrote it, and that
  // format's version (slirp_state_version); -1 when the library cannot save it.
  int32_t slirp_version = -1;
  std::vector<uint8_t> slirp;
  // The switch port: the unicast MACs the switch learnt behind this device's port.
  std::vector<std::array<uint8_t, 6>> macs;
};

}  // namespace vhost
