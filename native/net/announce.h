// What a port tells its network when a guest arrives by migration (SEND_RARP): the frame QEMU's own
// network back-ends send for it, a reverse-ARP request from the guest's MAC to everyone. Switches
// and bridges learn the MAC behind the port it comes in on, so frames for the guest follow it.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace vhost {

constexpr uint32_t kAnnouncementLen = 60;  // the minimum Ethernet frame (without FCS), zero-padded

// Broadcast, EtherType 0x8035 (RARP), request-reverse (opcode 3) with the guest's MAC as sender and
// target hardware address and 0.0.0.0 as both protocol addresses.
inline std::array<uint8_t, kAnnouncementLen> Announcement(const uint8_t mac[6]) {
  std::array<uint8_t, kAnnouncementLen> f{};
  std::memset(f.data(), 0xff, 6);
  std::memcpy(f.data() + 6, mac, 6);
  const uint8_t rarp[] = {0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03};
  std::memcpy(f.data() + 12, rarp, sizeof rarp);
  std::memcpy(f.data() + 22, mac, 6);  // sender hardware address; sender protocol address 0
  std::memcpy(f.data() + 32, mac, 6);  // target hardware address; target protocol address 0
  return f;
}

}  // namespace vhost
